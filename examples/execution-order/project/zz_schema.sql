/*
<pgmi-meta id="45d72aac-4fad-462c-aadb-d4c88890f485" idempotent="true">
  <description>The schema. Named zz_ so that its name sorts last; its key makes it run first.</description>
  <sortKeys>
    <key>10-schema</key>
  </sortKeys>
</pgmi-meta>
*/
CREATE SCHEMA IF NOT EXISTS shop;
