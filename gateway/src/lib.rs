pub mod receive;
pub mod smime;
