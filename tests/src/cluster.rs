//! A throw-away PostgreSQL cluster for tests that must configure the server (TLS). STUB.
