//! `dataplane`: wire formats, the VNF stages, the engine and the `dataplane` binary.
//!
//! Layering, from the bottom: [`wire`] reads and writes headers (no IO, no `unsafe`); [`stage`]
//! is the contract every VNF stage implements; [`stages`] holds the stages; [`engine`] runs
//! chains of stages over ports on pinned workers; [`config`] and [`build`] turn an operator's
//! TOML file into a running engine. Memory, rings and ports live in the `pmd` crate.

#![deny(unsafe_code)]

pub mod build;
pub mod config;
pub mod engine;
pub mod stage;
pub mod stages;
pub mod wire;
