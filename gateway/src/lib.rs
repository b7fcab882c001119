pub mod config;
pub mod dsn;
pub mod mime;
pub mod receive;
pub mod relay;
pub mod smime;
