//! MIME around the S/MIME engine, pure (bytes in, bytes out): recognise S/MIME entities, open
//! every layer of an inbound message, and wrap outbound content as signed and/or encrypted mail.

pub mod build;
pub mod classify;
pub mod headers;
pub mod open;
pub mod protect;
pub mod seven_bit;

pub use open::{open_message, open_message_with, Layer, OpenMode, Opened};
pub use protect::{encrypt_message, sign_message, SignFormat};
