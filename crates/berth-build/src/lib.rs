//! berth-build: `berth build`. The Dockerfile parser ([`parse`]) and variable substitution
//! ([`subst`]), `.dockerignore` ([`ignore`]), the executor ([`build`]) that runs stages as a
//! graph with a step cache in the image store, COPY/ADD on confined paths ([`copy`]), build
//! progress ([`progress`]) and the linter ([`lint`]).
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod build;
pub mod copy;
pub mod ignore;
pub mod lint;
pub mod parse;
pub mod progress;
pub mod subst;

pub use build::{build, Built, Mount, Options, RunStep, RunnerError, StepRunner};
pub use parse::{parse, Dockerfile, Heredoc, Instruction, ParseError};
