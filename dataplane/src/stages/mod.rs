//! The stages. The firewall, NAT44 and router stages live in their own modules (each being
//! built under its own issue); the two small ones make the engine usable on its own: a
//! port-to-port forward and a MAC rewrite.

pub mod firewall;
pub mod forward;
pub mod mac_rewrite;
pub mod nat;
pub mod router;

pub use forward::Forward;
pub use mac_rewrite::MacRewrite;
