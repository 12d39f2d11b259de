//! The golden cases: the generic [`Case`] every stage's cases are written as, the helpers they
//! share, and [`all`], which collects them.
//!
//! Each VNF stage keeps its cases and its model in its own file ([`forward`], [`router`],
//! [`firewall`], [`nat`]) and returns them from `cases()`; nothing else needs editing to add
//! one. A case states its configuration, the captures each port reads, the captures each port
//! must write and the counters the run must end with, all computed by the stage file's own model
//! of the behaviour (never by running the dataplane). The writer in the crate root turns it into
//! a case directory:
//!
//! * `config.toml`: [`Case::header_comment`] followed by [`Case::config`];
//! * `in.pcap` for the first input port, `in-<port>.pcap` for the others;
//! * `expected.pcap` for the first expected port, `expected-<port>.pcap` for the others;
//! * `expected-counters.toml`: [`Case::resolved_counters`] as [`Counters::to_toml`];
//! * `case.toml`: which port reads and writes which file, and the layouts the case runs in
//!   ([`Case::index_toml`]); the dataplane's golden test reads it.
//!
//! A stage case in a few lines:
//!
//! ```
//! use pcap_fixtures::cases::{standard_config, Case, DATA_ROOM, STANDARD_PORTS};
//! # let (pkts, out) = (Vec::new(), Vec::new());
//! let case = Case::new("router-example", "What the case checks, in a sentence or two.")
//!     .config(
//!         standard_config(DATA_ROOM, &STANDARD_PORTS, &["inside"], &["outside"])
//!             + "[[stage]]\nkind = \"forward\"\nroutes = { inside = \"outside\" }\n",
//!     )
//!     .input("inside", pkts)
//!     .expect("outside", out)
//!     .drops("malformed", 0);
//! assert_eq!(case.validate(), Ok(()));
//! ```

pub mod firewall;
pub mod forward;
pub mod nat;
pub mod router;

use crate::packet::Mac;
use crate::{Packet, Rng};

/// Every case, in a fixed order: the forward cases, then the router's, the firewall's and the
/// NAT44's.
pub fn all() -> Vec<Case> {
    let mut v = forward::cases();
    v.extend(router::cases());
    v.extend(firewall::cases());
    v.extend(nat::cases());
    v
}

/// The layouts the golden test replays a case in: one run-to-completion worker as configured,
/// two run-to-completion workers (flows spread by the symmetric hash), and the chain split over
/// two cores.
pub const LAYOUTS: [&str; 3] = ["rtc-1", "rtc-2", "pipeline-2"];

/// MAC of the `inside` port.
pub const INSIDE_MAC: Mac = [0x02, 0, 0, 0, 0, 0x01];
/// MAC of the `outside` port.
pub const OUTSIDE_MAC: Mac = [0x02, 0, 0, 0, 0, 0x02];
/// The two ports most cases use, for [`standard_config`].
pub const STANDARD_PORTS: [(&str, Mac); 2] = [("inside", INSIDE_MAC), ("outside", OUTSIDE_MAC)];
/// Next-hop MAC the `mac-rewrite` cases write as destination.
pub const NEXT_HOP_MAC: Mac = [0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee];
/// Source MAC of the subscriber hosts in the inputs.
pub const HOST_MAC: Mac = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
/// Destination MAC of the inputs (the inside port's gateway address as the hosts see it).
pub const GW_MAC: Mac = [0x52, 0x54, 0x00, 0xfe, 0xdc, 0xba];
/// First timestamp of most inputs: 2023-11-14 22:13:20 UTC.
pub const T0: u64 = 1_700_000_000_000_000_000;
/// The standard `memory.data_room`: frames longer than this are dropped by the receiving port
/// (`rx_oversize`).
pub const DATA_ROOM: u32 = 2048;

/// One golden case. Build it with [`Case::new`] and the builder methods.
#[derive(Debug, Clone, Default)]
pub struct Case {
    /// Directory name; a stage's cases are prefixed with the stage (`router-ttl-expired`).
    pub name: String,
    /// What the case checks (goes into the configuration's header comment).
    pub about: String,
    /// The complete `config.toml` after the standard header comment (see [`standard_config`]).
    pub config: String,
    /// (port, packets) each port reads; the first is written as `in.pcap`, the others as
    /// `in-<port>.pcap`.
    pub inputs: Vec<(String, Vec<Packet>)>,
    /// (port, packets) each port must write, in order; the first is written as
    /// `expected.pcap`, the others as `expected-<port>.pcap`.
    pub expected: Vec<(String, Vec<Packet>)>,
    /// Counters the run must end with.
    pub counters: Counters,
    /// The subset of [`LAYOUTS`] the case must pass in; empty means all.
    pub layouts: Vec<&'static str>,
    /// Why some layouts are excluded (the golden test prints it when it skips one).
    pub layout_note: String,
}

/// Counters a replay of a case must end with, in every layout it runs in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Port counters. A port that reads or writes a capture and is not listed gets counters
    /// derived from the case (see [`Case::resolved_counters`]); a port in neither must count
    /// nothing.
    pub ports: Vec<PortCounters>,
    /// Drops by reason: an engine reason (`malformed`) or a stage's own, as `stage.reason`
    /// (`router.ttl_exceeded`, summed over workers). A reason not listed must be zero.
    pub drops: Vec<(String, u64)>,
    /// Packets created by stages (ICMP errors, ARP requests), if the case states it.
    pub created: Option<u64>,
}

/// One port's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Port name, as in the configuration.
    pub name: String,
    /// Packets received (handed to the engine).
    pub rx_packets: u64,
    /// Packets dropped on receive for not fitting a buffer.
    pub rx_oversize: u64,
    /// Packets sent.
    pub tx_packets: u64,
}

impl PortCounters {
    /// Counters for port `name`.
    pub fn new(
        name: impl Into<String>,
        rx_packets: u64,
        rx_oversize: u64,
        tx_packets: u64,
    ) -> Self {
        PortCounters {
            name: name.into(),
            rx_packets,
            rx_oversize,
            tx_packets,
        }
    }
}

impl Case {
    /// A case named `name` (its directory) that checks `about`; everything else empty.
    pub fn new(name: impl Into<String>, about: impl Into<String>) -> Case {
        Case {
            name: name.into(),
            about: about.into(),
            ..Case::default()
        }
    }

    /// Sets the configuration (everything after the header comment). It must contain
    /// [`replay_block`] of the input and expected ports, in order ([`standard_config`] writes
    /// it).
    pub fn config(mut self, body: impl Into<String>) -> Case {
        self.config = body.into();
        self
    }

    /// Adds the capture port `port` reads (the first call's becomes `in.pcap`).
    pub fn input(mut self, port: impl Into<String>, packets: Vec<Packet>) -> Case {
        self.inputs.push((port.into(), packets));
        self
    }

    /// Adds what port `port` must write, in order (the first call's becomes `expected.pcap`).
    /// Empty `packets` states that the port sends nothing.
    pub fn expect(mut self, port: impl Into<String>, packets: Vec<Packet>) -> Case {
        self.expected.push((port.into(), packets));
        self
    }

    /// Replaces all counters.
    pub fn counters(mut self, counters: Counters) -> Case {
        self.counters = counters;
        self
    }

    /// States one port's counters explicitly (needed only when some of its input is
    /// oversize; otherwise [`Case::resolved_counters`] derives them).
    pub fn port_counters(
        mut self,
        port: impl Into<String>,
        rx_packets: u64,
        rx_oversize: u64,
        tx_packets: u64,
    ) -> Case {
        self.counters
            .ports
            .push(PortCounters::new(port, rx_packets, rx_oversize, tx_packets));
        self
    }

    /// States the count of one drop reason: an engine reason (`"malformed"`) or a stage's
    /// (`"router.ttl_exceeded"`). Listing a reason with 0 documents that it must not happen;
    /// unlisted reasons must be 0 too.
    pub fn drops(mut self, reason: impl Into<String>, count: u64) -> Case {
        self.counters.drops.push((reason.into(), count));
        self
    }

    /// States how many packets the stages create.
    pub fn created(mut self, count: u64) -> Case {
        self.counters.created = Some(count);
        self
    }

    /// Restricts the case to some of [`LAYOUTS`], saying why (printed when one is skipped).
    pub fn layouts(mut self, layouts: &[&'static str], note: impl Into<String>) -> Case {
        self.layouts = layouts.to_vec();
        self.layout_note = note.into();
        self
    }

    /// The layouts the case runs in ([`LAYOUTS`] if not restricted).
    pub fn effective_layouts(&self) -> Vec<&'static str> {
        if self.layouts.is_empty() {
            LAYOUTS.to_vec()
        } else {
            LAYOUTS
                .into_iter()
                .filter(|l| self.layouts.contains(l))
                .collect()
        }
    }

    /// File name of the `i`-th input capture (`in.pcap`, then `in-<port>.pcap`).
    pub fn input_file(&self, i: usize) -> String {
        file_name("in", i, &self.inputs[i].0)
    }

    /// File name of the `i`-th expected capture (`expected.pcap`, then
    /// `expected-<port>.pcap`).
    pub fn expected_file(&self, i: usize) -> String {
        file_name("expected", i, &self.expected[i].0)
    }

    /// The counters with every port that reads or writes a capture listed: a port not stated
    /// explicitly gets `rx_packets` = its input's length, `rx_oversize` = 0, `tx_packets` = its
    /// expected output's length.
    pub fn resolved_counters(&self) -> Counters {
        let mut c = self.counters.clone();
        let ports = self.inputs.iter().chain(&self.expected).map(|(p, _)| p);
        for port in ports {
            if !c.ports.iter().any(|pc| &pc.name == port) {
                c.ports.push(PortCounters::new(
                    port.clone(),
                    self.input_len(port),
                    0,
                    self.expected_len(port),
                ));
            }
        }
        c
    }

    fn input_len(&self, port: &str) -> u64 {
        self.inputs
            .iter()
            .find(|(p, _)| p == port)
            .map_or(0, |(_, v)| v.len() as u64)
    }

    fn expected_len(&self, port: &str) -> u64 {
        self.expected
            .iter()
            .find(|(p, _)| p == port)
            .map_or(0, |(_, v)| v.len() as u64)
    }

    /// The comment `config.toml` starts with: generated-file warning, [`Case::about`], and
    /// how to replay the case by hand.
    pub fn header_comment(&self) -> String {
        let name = &self.name;
        let mut s = format!(
            "# Golden case `{name}`, written by `cargo run -p pcap-fixtures`: do not edit by hand\n\
             # (`cargo run -p pcap-fixtures -- --check` fails on any difference).\n#\n"
        );
        for line in wrap(&self.about, 94) {
            s.push_str(&format!("# {line}\n"));
        }
        s.push_str(&format!(
            "#\n# Replay by hand:\n#   dataplane replay --config pcap-fixtures/{name}/config.toml \\\n"
        ));
        if self.inputs.len() == 1 && self.expected.len() == 1 {
            s.push_str(&format!(
                "#     --in pcap-fixtures/{name}/in.pcap --out /tmp/{name}.pcap\n"
            ));
        } else {
            let mut args = Vec::new();
            for (i, (port, _)) in self.inputs.iter().enumerate() {
                args.push(format!(
                    "--in {port}=pcap-fixtures/{name}/{}",
                    self.input_file(i)
                ));
            }
            for (port, _) in &self.expected {
                args.push(format!("--out {port}=/tmp/{name}-{port}.pcap"));
            }
            s.push_str(&format!("#     {}\n", args.join(" \\\n#     ")));
        }
        s.push('\n');
        s
    }

    /// The `case.toml` text: which port reads and writes which file, and the layouts.
    pub fn index_toml(&self) -> String {
        let mut s = format!(
            "# Golden case `{}`: the capture each port reads, the one each must write, and the\n\
             # layouts the case runs in. Written by pcap-fixtures; do not edit.\n\n",
            self.name
        );
        let layouts: Vec<String> = self
            .effective_layouts()
            .iter()
            .map(|l| toml_str(l))
            .collect();
        s.push_str(&format!("layouts = [{}]\n", layouts.join(", ")));
        if !self.layout_note.is_empty() {
            s.push_str(&format!("layout_note = {}\n", toml_str(&self.layout_note)));
        }
        s.push_str("\n[inputs]\n");
        for (i, (port, _)) in self.inputs.iter().enumerate() {
            s.push_str(&format!(
                "{} = {}\n",
                toml_key(port),
                toml_str(&self.input_file(i))
            ));
        }
        s.push_str("\n[expected]\n");
        for (i, (port, _)) in self.expected.iter().enumerate() {
            s.push_str(&format!(
                "{} = {}\n",
                toml_key(port),
                toml_str(&self.expected_file(i))
            ));
        }
        s
    }

    /// Checks the case is complete and consistent; the message says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        let err = |what: String| Err(format!("case `{name}`: {what}"));
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return err("the name must be non-empty lowercase letters, digits and '-'".into());
        }
        if self.about.trim().is_empty() {
            return err("`about` is empty: say what the case checks".into());
        }
        if self.inputs.is_empty() || self.expected.is_empty() {
            return err("needs at least one input and one expected port".into());
        }
        for (what, list) in [("input", &self.inputs), ("expected", &self.expected)] {
            for (i, (port, _)) in list.iter().enumerate() {
                if !is_port_name(port) {
                    return err(format!(
                        "{what} port {port:?}: use letters, digits, '_' and '-'"
                    ));
                }
                if list[..i].iter().any(|(p, _)| p == port) {
                    return err(format!("{what} port {port:?} given twice"));
                }
            }
        }
        let ins: Vec<&str> = self.inputs.iter().map(|(p, _)| p.as_str()).collect();
        let outs: Vec<&str> = self.expected.iter().map(|(p, _)| p.as_str()).collect();
        let replay = replay_block(&ins, &outs);
        if !self.config.contains(&replay) {
            return err(format!(
                "the config must map the replay files in the order of the case's inputs and \
                 expected outputs; it lacks\n{replay}(standard_config or replay_block write it)"
            ));
        }
        for l in &self.layouts {
            if !LAYOUTS.contains(l) {
                return err(format!("unknown layout {l:?} (known: {LAYOUTS:?})"));
            }
        }
        let restricted = self.effective_layouts().len() < LAYOUTS.len();
        if restricted == self.layout_note.trim().is_empty() {
            return err("give a layout_note exactly when some layouts are excluded".into());
        }
        for (i, pc) in self.counters.ports.iter().enumerate() {
            if self.counters.ports[..i].iter().any(|q| q.name == pc.name) {
                return err(format!("counters for port {:?} given twice", pc.name));
            }
            let (rx, tx) = (self.input_len(&pc.name), self.expected_len(&pc.name));
            if pc.rx_packets + pc.rx_oversize != rx {
                return err(format!(
                    "port {:?}: rx_packets + rx_oversize = {} but it reads {rx} packets",
                    pc.name,
                    pc.rx_packets + pc.rx_oversize
                ));
            }
            if pc.tx_packets != tx {
                return err(format!(
                    "port {:?}: tx_packets = {} but {tx} packets are expected out of it",
                    pc.name, pc.tx_packets
                ));
            }
        }
        for (i, (reason, _)) in self.counters.drops.iter().enumerate() {
            if reason.is_empty() || !reason.bytes().all(|b| b.is_ascii_graphic() && b != b'"') {
                return err(format!("drop reason {reason:?} is not a counter name"));
            }
            if self.counters.drops[..i].iter().any(|(r, _)| r == reason) {
                return err(format!("drop reason {reason:?} given twice"));
            }
        }
        Ok(())
    }
}

impl Counters {
    /// The `expected-counters.toml` text for case `name`.
    pub fn to_toml(&self, name: &str) -> String {
        let mut s = format!(
            "# Counters a replay of `{name}` must end with in every layout it runs in.\n\
             # Written by pcap-fixtures from its model; do not edit. Drop reasons not listed (engine\n\
             # reasons and `stage.reason`) are 0, and so are all counters of ports not listed.\n\n"
        );
        if let Some(n) = self.created {
            s.push_str(&format!("created = {n}\n\n"));
        }
        for p in &self.ports {
            s.push_str(&format!(
                "[ports.{}]\nrx_packets = {}\nrx_oversize = {}\ntx_packets = {}\n\n",
                toml_key(&p.name),
                p.rx_packets,
                p.rx_oversize,
                p.tx_packets
            ));
        }
        s.push_str("[drops]\n");
        for (reason, n) in &self.drops {
            s.push_str(&format!("{} = {n}\n", toml_key(reason)));
        }
        s
    }
}

/// `[memory]` with `data_room` and the standard pool (16384 buffers, 128 B headroom, no
/// hugepages), followed by a blank line.
pub fn memory_block(data_room: u32) -> String {
    format!(
        "[memory]\nbuffers = 16384\ndata_room = {data_room}\nheadroom = 128\nhugepages = \"never\"\n\n"
    )
}

/// `[engine]`: run-to-completion on worker 0, bursts of 32 (the golden test overrides the
/// workers and layout for `rtc-2` and `pipeline-2`), followed by a blank line.
pub fn engine_block() -> String {
    "[engine]\nlayout = \"run-to-completion\"\nworkers = [0]\nburst = 32\n\n".into()
}

/// `[replay]` mapping `inputs` and `outputs` (port names, in the case's order), followed by a
/// blank line.
pub fn replay_block(inputs: &[&str], outputs: &[&str]) -> String {
    let list = |v: &[&str]| v.iter().map(|p| toml_str(p)).collect::<Vec<_>>().join(", ");
    format!(
        "[replay]\ninputs = [{}]\noutputs = [{}]\n\n",
        list(inputs),
        list(outputs)
    )
}

/// One pcap `[[port]]` named `name` with MAC `mac`, followed by a blank line.
pub fn port_block(name: &str, mac: Mac) -> String {
    format!(
        "[[port]]\nname = {}\nkind = \"pcap\"\nmac = \"{}\"\n\n",
        toml_str(name),
        mac_str(mac)
    )
}

/// Everything but the stages: [`memory_block`], [`engine_block`], [`replay_block`] and a
/// [`port_block`] per port. Append the `[[stage]]` tables (it ends with a blank line).
pub fn standard_config(
    data_room: u32,
    ports: &[(&str, Mac)],
    inputs: &[&str],
    outputs: &[&str],
) -> String {
    let mut s = memory_block(data_room) + &engine_block() + &replay_block(inputs, outputs);
    for &(name, mac) in ports {
        s.push_str(&port_block(name, mac));
    }
    s
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_str(m: Mac) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Puts `frames` on a clock starting at `t0`, about `step` ns apart with a seeded jitter of up
/// to a quarter step (so the nanosecond digits are not all zero).
pub fn stamp(frames: Vec<Vec<u8>>, t0: u64, step: u64, seed: u64) -> Vec<Packet> {
    let mut rng = Rng::new(seed);
    let mut t = t0;
    frames
        .into_iter()
        .map(|data| {
            let p = Packet { ts_ns: t, data };
            t += step + rng.below(step / 4 + 1);
            p
        })
        .collect()
}

/// Deterministic filler bytes: `len` bytes of a sequence picked by `seed`.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed.wrapping_mul(17))
        })
        .collect()
}

/// Words of `text` in lines of at most `width` characters (longer words get their own line).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let cur = lines.last_mut().expect("never empty");
        if !cur.is_empty() && cur.len() + 1 + word.len() > width {
            lines.push(word.to_string());
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(word);
        }
    }
    lines
}

fn file_name(stem: &str, i: usize, port: &str) -> String {
    if i == 0 {
        format!("{stem}.pcap")
    } else {
        format!("{stem}-{port}.pcap")
    }
}

fn is_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A TOML key: bare when it can be, else quoted (`"router.ttl_exceeded"`).
fn toml_key(s: &str) -> String {
    if is_port_name(s) {
        s.to_string()
    } else {
        toml_str(s)
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkts(n: usize) -> Vec<Packet> {
        (0..n)
            .map(|i| Packet {
                ts_ns: i as u64,
                data: vec![0; 60],
            })
            .collect()
    }

    fn two_way() -> Case {
        Case::new("router-two-way", "Two ports in, two out.")
            .config(
                standard_config(
                    DATA_ROOM,
                    &STANDARD_PORTS,
                    &["inside", "outside"],
                    &["outside", "inside"],
                ) + "[[stage]]\nkind = \"router\"\n",
            )
            .input("inside", pkts(3))
            .input("outside", pkts(2))
            .expect("outside", pkts(2))
            .expect("inside", pkts(1))
            .drops("router.ttl_exceeded", 1)
            .drops("malformed", 0)
            .created(1)
            .layouts(&["rtc-1", "rtc-2"], "the router is one segment")
    }

    #[test]
    fn every_case_is_valid_and_named_once() {
        let cases = all();
        for c in &cases {
            assert_eq!(c.validate(), Ok(()));
        }
        for (i, c) in cases.iter().enumerate() {
            assert!(
                cases[..i].iter().all(|d| d.name != c.name),
                "two cases named {}",
                c.name
            );
        }
    }

    #[test]
    fn several_ports_get_their_own_files() {
        let c = two_way();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(
            (c.input_file(0), c.input_file(1)),
            ("in.pcap".into(), "in-outside.pcap".into())
        );
        assert_eq!(
            (c.expected_file(0), c.expected_file(1)),
            ("expected.pcap".into(), "expected-inside.pcap".into())
        );
        let counters = c.resolved_counters();
        assert_eq!(
            counters.ports,
            [
                PortCounters::new("inside", 3, 0, 1),
                PortCounters::new("outside", 2, 0, 2)
            ]
        );
        let text = counters.to_toml(&c.name);
        assert!(text.contains("created = 1\n\n[ports.inside]\n"), "{text}");
        assert!(
            text.ends_with("[drops]\n\"router.ttl_exceeded\" = 1\nmalformed = 0\n"),
            "{text}"
        );
        let index = c.index_toml();
        assert!(
            index.contains(
                "layouts = [\"rtc-1\", \"rtc-2\"]\nlayout_note = \"the router is one segment\"\n\n\
                 [inputs]\ninside = \"in.pcap\"\noutside = \"in-outside.pcap\"\n\n\
                 [expected]\noutside = \"expected.pcap\"\ninside = \"expected-inside.pcap\"\n"
            ),
            "{index}"
        );
        let header = c.header_comment();
        assert!(
            header.contains(
                "--in inside=pcap-fixtures/router-two-way/in.pcap \\\n\
                 #     --in outside=pcap-fixtures/router-two-way/in-outside.pcap \\\n\
                 #     --out outside=/tmp/router-two-way-outside.pcap \\\n\
                 #     --out inside=/tmp/router-two-way-inside.pcap\n\n"
            ),
            "{header}"
        );
    }

    #[test]
    fn validate_names_the_mistake() {
        let bad = |c: Case, want: &str| {
            let e = c.validate().unwrap_err();
            assert!(e.contains(want), "{want}: {e}");
        };
        bad(two_way().input("inside", pkts(1)), "given twice");
        bad(two_way().config("[[stage]]\n"), "lacks");
        bad(two_way().layouts(&["rtc-3"], "x"), "unknown layout");
        bad(two_way().layouts(&["rtc-1"], ""), "layout_note");
        bad(two_way().layouts(&[], "why"), "layout_note");
        bad(two_way().port_counters("inside", 3, 0, 2), "tx_packets = 2");
        bad(two_way().port_counters("outside", 1, 0, 2), "reads 2");
        bad(two_way().drops("malformed", 3), "given twice");
        let mut c = two_way();
        c.name = "Router".into();
        bad(c, "lowercase");
    }
}
