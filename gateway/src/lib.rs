pub mod mime;
pub mod receive;
pub mod smime;
