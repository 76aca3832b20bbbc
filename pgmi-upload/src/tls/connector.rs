//! The TLS connector the `postgres` client is handed: OpenSSL on a context we build.
//!
//! `postgres-openssl`, which this replaces, starts from `openssl::ssl::SslConnector`, whose
//! constructor loads OpenSSL's default trust store: it parses every certificate of the
//! system bundle, about 15 ms here (16.1 against 1.2 ms for a bare context, measured), on
//! every deploy over TCP, only for [`super::prepare`] to replace that store with the one the
//! settings name. This connector starts from a bare context with the protocol options and
//! modes `SslConnector` uses, and does per connection what it did: SNI for a host name (never
//! for an IP address), the host-name check when the caller asks for it, and the
//! `tls-server-end-point` channel binding that SCRAM-SHA-256-PLUS needs.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use openssl::error::ErrorStack;
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::ssl::{Ssl, SslContext, SslContextBuilder, SslMethod, SslMode, SslOptions, SslRef};
use openssl::x509::verify::X509CheckFlags;
use openssl::x509::X509VerifyResult;
use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_openssl::SslStream;

/// A client context with an empty trust store: TLS 1.2 and newer are set by the caller,
/// compression and the old protocols are off, and writes may be retried from a moved
/// buffer (the async stream does that).
pub fn context() -> Result<SslContextBuilder, ErrorStack> {
    let mut context = SslContextBuilder::new(SslMethod::tls_client())?;
    let options = (SslOptions::ALL
        | SslOptions::NO_COMPRESSION
        | SslOptions::NO_SSLV2
        | SslOptions::NO_SSLV3)
        & !SslOptions::DONT_INSERT_EMPTY_FRAGMENTS;
    context.set_options(options);
    context.set_mode(
        SslMode::AUTO_RETRY
            | SslMode::ACCEPT_MOVING_WRITE_BUFFER
            | SslMode::ENABLE_PARTIAL_WRITE
            | SslMode::RELEASE_BUFFERS,
    );
    // The cipher suites below TLS 1.3 that the previous connector allowed: no anonymous,
    // unencrypted, MD5, DES, RC4, IDEA, SEED, DSS, SRP or PSK suites.
    context.set_cipher_list(
        "DEFAULT:!aNULL:!eNULL:!MD5:!3DES:!DES:!RC4:!IDEA:!SEED:!aDSS:!SRP:!PSK",
    )?;
    Ok(context)
}

/// What the caller sets on each connection's `Ssl` (the verify callback), given the host.
type Configure = dyn Fn(&mut SslRef, &str) -> Result<(), ErrorStack> + Send + Sync;

/// Makes one TLS handshake per connection from a shared context.
#[derive(Clone)]
pub struct Connector {
    context: SslContext,
    verify_name: bool,
    configure: Arc<Configure>,
}

impl Connector {
    /// `verify_name`: check the server certificate's name against the host (`verify-full`).
    pub fn new(
        context: SslContext,
        verify_name: bool,
        configure: impl Fn(&mut SslRef, &str) -> Result<(), ErrorStack> + Send + Sync + 'static,
    ) -> Connector {
        Connector {
            context,
            verify_name,
            configure: Arc::new(configure),
        }
    }
}

impl<S> MakeTlsConnect<S> for Connector
where
    S: AsyncRead + AsyncWrite + Unpin + fmt::Debug + Send + 'static,
{
    type Stream = Stream<S>;
    type TlsConnect = Handshake;
    type Error = ErrorStack;

    fn make_tls_connect(&mut self, host: &str) -> Result<Handshake, ErrorStack> {
        let mut ssl = Ssl::new(&self.context)?;
        let ip = host.parse::<IpAddr>().ok();
        if ip.is_none() {
            ssl.set_hostname(host)?;
        }
        if self.verify_name {
            let param = ssl.param_mut();
            param.set_hostflags(X509CheckFlags::NO_PARTIAL_WILDCARDS);
            match ip {
                Some(ip) => param.set_ip(ip)?,
                None => param.set_host(host)?,
            }
        }
        (self.configure)(&mut ssl, host)?;
        Ok(Handshake { ssl })
    }
}

/// One connection's handshake, run when the server has agreed to TLS.
pub struct Handshake {
    ssl: Ssl,
}

impl<S> TlsConnect<S> for Handshake
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = Stream<S>;
    type Error = Box<dyn std::error::Error + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Stream<S>, Self::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let mut tls = SslStream::new(self.ssl, stream)?;
            match Pin::new(&mut tls).connect().await {
                Ok(()) => Ok(Stream(tls)),
                Err(error) => Err(Box::new(HandshakeError {
                    error,
                    verify: tls.ssl().verify_result(),
                }) as Self::Error),
            }
        })
    }
}

/// A failed handshake, with OpenSSL's verdict on the server certificate when it has one
/// (the error stack alone may say only "certificate verify failed").
#[derive(Debug)]
struct HandshakeError {
    error: openssl::ssl::Error,
    verify: X509VerifyResult,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        if self.verify != X509VerifyResult::OK {
            write!(f, ": {}", self.verify)?;
        }
        Ok(())
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// An established TLS stream.
pub struct Stream<S>(SslStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for Stream<S> {
    /// RFC 5929 `tls-server-end-point`: the server certificate's hash, with the hash of its
    /// signature algorithm (SHA-256 in place of MD5 and SHA-1).
    fn channel_binding(&self) -> ChannelBinding {
        match server_end_point(self.0.ssl()) {
            Some(hash) => ChannelBinding::tls_server_end_point(hash),
            None => ChannelBinding::none(),
        }
    }
}

fn server_end_point(ssl: &SslRef) -> Option<Vec<u8>> {
    let cert = ssl.peer_certificate()?;
    end_point_hash(&cert)
}

fn end_point_hash(cert: &openssl::x509::X509Ref) -> Option<Vec<u8>> {
    let algorithm = cert.signature_algorithm().object().nid();
    let digest = match algorithm.signature_algorithms()?.digest {
        Nid::MD5 | Nid::SHA1 => MessageDigest::sha256(),
        nid => MessageDigest::from_nid(nid)?,
    };
    cert.digest(digest).ok().map(|hash| hash.to_vec())
}

#[cfg(test)]
mod tests {
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Builder, X509NameBuilder};

    fn self_signed(digest: MessageDigest) -> openssl::x509::X509 {
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "end-point").unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, digest).unwrap();
        b.build()
    }

    // RFC 5929: the certificate's own signature hash, SHA-256 in place of MD5 and SHA-1.
    #[test]
    fn the_end_point_hash_follows_the_signature_algorithm() {
        for (digest, expect) in [
            (MessageDigest::sha1(), MessageDigest::sha256()),
            (MessageDigest::sha256(), MessageDigest::sha256()),
            (MessageDigest::sha384(), MessageDigest::sha384()),
            (MessageDigest::sha512(), MessageDigest::sha512()),
        ] {
            let cert = self_signed(digest);
            assert_eq!(
                super::end_point_hash(&cert),
                Some(cert.digest(expect).unwrap().to_vec())
            );
        }
    }
}
