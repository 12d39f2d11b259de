//! The built-in stages. The firewall, NAT44 and router stages arrive in their own modules;
//! the two here make the engine usable on its own: a port-to-port forward and a MAC rewrite.

pub mod forward;
pub mod mac_rewrite;

pub use forward::Forward;
pub use mac_rewrite::MacRewrite;
