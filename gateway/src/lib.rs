pub mod smime;
