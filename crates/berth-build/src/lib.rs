//! berth-build: `berth build`. This first part is the Dockerfile parser ([`parse`]):
//! parser directives, comments, line continuations, the escape character, shell and JSON
//! (exec) forms, flags, heredocs and every instruction's argument shape, with errors that
//! name the file, line and column.
#![warn(missing_docs)]

pub mod parse;
pub mod subst;

pub use parse::{parse, Dockerfile, Heredoc, Instruction, ParseError};
