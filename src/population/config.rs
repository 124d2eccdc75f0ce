//! The population's settings: the `[population]` table of a scenario file, its flags, and the
//! resolved [`PopulationSpec`] that generation works from. Every bad value is an error naming
//! its key or flag.

use crate::config::units;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;

/// Most room classes a population may have: each is a `room_class` label value in Prometheus,
/// so the series stay bounded.
pub const MAX_CLASSES: usize = 16;
/// Most devices (connections) one user may have.
pub const MAX_DEVICES: u32 = 64;
/// Users per community when neither `--community` nor `community` says.
pub const DEFAULT_COMMUNITY: u32 = 10_000;
/// Largest room size a distribution may name (a Zipf table holds one entry per size).
pub const MAX_ROOM_SIZE: u32 = 1_000_000;

/// A `[population]` value: a number or a string such as "10k" or "3-30".
#[derive(Deserialize, Debug, Clone)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
}

impl Value {
    fn text(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => s.clone(),
        }
    }
}

/// The flag's value if given, else the table's key parsed with the flag's own parser (an error
/// names the key), else `None`.
fn pick<T>(
    flag: Option<T>,
    file: &Option<Value>,
    key: &str,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Option<T>> {
    match (flag, file) {
        (Some(v), _) => Ok(Some(v)),
        (None, None) => Ok(None),
        (None, Some(v)) => parse(&v.text()).map(Some).map_err(|e| Error::Usage(format!("scenario key '{key}': {e}"))),
    }
}

/// A count distribution: room sizes, devices per user.
#[derive(Clone, Debug, PartialEq)]
pub enum Dist {
    /// `"2"`
    Fixed(u32),
    /// `"3-30"`: uniform, both ends included.
    Range(u32, u32),
    /// `"200-5000 zipf 1.2"` (exponent 1 when left out): the smallest the most common.
    Zipf { min: u32, max: u32, exponent: f64 },
    /// `"1:70,2:25,3:5"`: value:weight pairs.
    Weights(Vec<(u32, u32)>),
}

impl Dist {
    pub fn parse(text: &str) -> std::result::Result<Dist, String> {
        let t = text.trim();
        let num = |s: &str| units::parse_count_u32(s.trim());
        if t.contains(':') {
            let mut pairs = Vec::new();
            for p in t.split(',') {
                let (v, w) = p.split_once(':').ok_or_else(|| format!("'{p}' in '{t}' is not value:weight"))?;
                pairs.push((num(v)?, num(w)?));
            }
            if pairs.iter().all(|&(_, w)| w == 0) {
                return Err(format!("'{t}': every weight is 0"));
            }
            return Ok(Dist::Weights(pairs));
        }
        let mut words = t.split_whitespace();
        let range = words.next().ok_or("empty distribution (expected e.g. 2, 3-30, \"200-5000 zipf 1.2\")")?;
        let (min, max) = match range.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(range)?, num(range)?),
        };
        if min > max {
            return Err(format!("'{t}': {min} is above {max}"));
        }
        match (words.next(), words.next(), words.next()) {
            (None, ..) if min == max => Ok(Dist::Fixed(min)),
            (None, ..) => Ok(Dist::Range(min, max)),
            (Some("zipf"), e, None) => {
                let exponent = match e {
                    None => 1.0,
                    Some(e) => e.parse::<f64>().map_err(|_| format!("'{t}': zipf exponent '{e}' is not a number"))?,
                };
                if !(exponent.is_finite() && exponent > 0.0) {
                    return Err(format!("'{t}': the zipf exponent must be above 0"));
                }
                Ok(Dist::Zipf { min, max, exponent })
            }
            _ => Err(format!("'{t}': expected N, A-B, \"A-B zipf [EXPONENT]\" or value:weight,...")),
        }
    }

    /// The smallest and largest value it can draw.
    pub fn bounds(&self) -> (u32, u32) {
        match self {
            Dist::Fixed(n) => (*n, *n),
            Dist::Range(a, b) | Dist::Zipf { min: a, max: b, .. } => (*a, *b),
            Dist::Weights(p) => {
                let live = p.iter().filter(|&&(_, w)| w > 0).map(|&(v, _)| v);
                (live.clone().min().unwrap_or(0), live.max().unwrap_or(0))
            }
        }
    }
}

impl fmt::Display for Dist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dist::Fixed(n) => write!(f, "{n}"),
            Dist::Range(a, b) => write!(f, "{a}-{b}"),
            Dist::Zipf { min, max, exponent } => write!(f, "{min}-{max} zipf {exponent}"),
            Dist::Weights(p) => {
                let parts: Vec<String> = p.iter().map(|(v, w)| format!("{v}:{w}")).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

impl Serialize for Dist {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Read back from results files (`herd merge`) as written.
impl<'de> Deserialize<'de> for Dist {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Dist, D::Error> {
        let s = String::deserialize(d)?;
        Dist::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The `[population]` table of a scenario file.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PopulationTable {
    pub users: Option<Value>,
    pub devices: Option<Value>,
    pub community: Option<Value>,
    /// Total rooms, for classes given as a `share`.
    pub rooms: Option<Value>,
    #[serde(default, rename = "class")]
    pub classes: Vec<ClassTable>,
}

/// One `[[population.class]]`.
#[derive(Deserialize, Debug, Default, Clone)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClassTable {
    pub name: String,
    pub rooms: Option<Value>,
    pub share: Option<f64>,
    pub size: Option<Value>,
    pub senders: Option<f64>,
    pub rate: Option<Value>,
    pub message_size: Option<Value>,
}

/// The population flags of `herd run` (each overrides its `[population]` key).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct PopulationArgs {
    /// Users of a population (instead of -c/-k): each user's devices join all its rooms
    #[arg(long, value_parser = units::parse_count_u32, conflicts_with_all = ["conversations", "members"])]
    pub users: Option<u32>,
    /// Devices (connections) per user: 1, 1-3 or 1:70,2:25,3:5 (value:weight) [default: 1]
    #[arg(long, value_name = "DIST")]
    pub devices: Option<String>,
    /// Most users per community; every room's members are in one community [default: 10k]
    #[arg(long, value_parser = units::parse_count_u32)]
    pub community: Option<u32>,
    /// Total rooms, for room classes given as a share
    #[arg(long, value_parser = units::parse_count_u32)]
    pub rooms: Option<u32>,
    /// A room class: NAME,rooms=N|share=F,size=DIST[,senders=F][,rate=R][,message-size=B]; the
    /// flags given replace the file's classes
    #[arg(long, value_name = "SPEC")]
    pub room_class: Vec<String>,
}

/// One resolved room class.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ClassSpec {
    pub name: String,
    /// Rooms of this class across the population.
    pub rooms: u32,
    pub size: Dist,
    /// Share of a room's members who send (at least one per room); `None`: one sender per room.
    pub senders: Option<f64>,
    /// Messages per second per sender.
    pub rate: f64,
    /// Message size in bytes.
    pub message_size: usize,
}

/// A resolved population: what generation needs, nothing more.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PopulationSpec {
    pub users: u32,
    pub devices: Dist,
    /// Most users per community.
    pub community: u32,
    pub classes: Vec<ClassSpec>,
}

/// The run-wide values a class falls back to (`--rate`, `--size`).
#[derive(Clone, Copy, Debug)]
pub struct ClassDefaults {
    pub rate: f64,
    pub size: usize,
}

/// The scenario file's `[population]` table, read as its keys.
pub fn table(v: &toml::Value) -> Result<PopulationTable> {
    v.clone().try_into().map_err(|e| Error::Usage(format!("scenario [population]: {e}")))
}

/// Flags over the file's `[population]` table; `None` when neither describes a population.
pub fn resolve(
    args: &PopulationArgs,
    table: Option<&toml::Value>,
    defaults: ClassDefaults,
) -> Result<Option<PopulationSpec>> {
    let table = table.map(self::table).transpose()?;
    let t = table.clone().unwrap_or_default();
    let Some(users) = pick(args.users, &t.users, "population.users", units::parse_count_u32)? else {
        if table.is_some() || !args.room_class.is_empty() || args.devices.is_some() {
            return Err(Error::Usage("a population needs its users (--users or population.users)".into()));
        }
        return Ok(None);
    };
    if users < 2 {
        return Err(Error::Usage(format!("--users {users}: a population needs at least 2 users")));
    }
    let flag =
        args.devices.as_deref().map(Dist::parse).transpose().map_err(|e| Error::Usage(format!("--devices: {e}")))?;
    let devices = pick(flag, &t.devices, "population.devices", Dist::parse)?
        .map_or(Ok(Dist::Fixed(1)), |d| check_devices(d).map_err(|e| Error::Usage(format!("--devices: {e}"))))?;
    let community = pick(args.community, &t.community, "population.community", units::parse_count_u32)?
        .unwrap_or(DEFAULT_COMMUNITY)
        .min(users);
    if community < 2 {
        return Err(Error::Usage("--community: a community holds at least 2 users".into()));
    }
    let total_rooms = pick(args.rooms, &t.rooms, "population.rooms", units::parse_count_u32)?;
    let tables: Vec<ClassTable> = if args.room_class.is_empty() {
        t.classes.clone()
    } else {
        args.room_class.iter().map(|s| parse_class_flag(s)).collect::<Result<_>>()?
    };
    if tables.is_empty() {
        return Err(Error::Usage(
            "a population needs at least one room class (--room-class or [[population.class]])".into(),
        ));
    }
    if tables.len() > MAX_CLASSES {
        return Err(Error::Usage(format!("{} room classes: at most {MAX_CLASSES}", tables.len())));
    }
    let mut classes = Vec::new();
    for c in &tables {
        let spec = class(c, total_rooms, community, defaults)?;
        if classes.iter().any(|o: &ClassSpec| o.name == spec.name) {
            return Err(Error::Usage(format!("room class '{}' is named twice", spec.name)));
        }
        classes.push(spec);
    }
    Ok(Some(PopulationSpec { users, devices, community, classes }))
}

fn check_devices(d: Dist) -> std::result::Result<Dist, String> {
    let (lo, hi) = d.bounds();
    if lo == 0 || hi > MAX_DEVICES {
        return Err(format!("'{d}': every user has 1 to {MAX_DEVICES} devices"));
    }
    Ok(d)
}

/// `NAME,key=value,...` as the same keys as a `[[population.class]]` table.
fn parse_class_flag(s: &str) -> Result<ClassTable> {
    let bad = |m: String| Error::Usage(format!("--room-class '{s}': {m}"));
    let mut parts = s.split(',');
    let mut c = ClassTable { name: parts.next().unwrap_or("").trim().to_string(), ..Default::default() };
    for p in parts {
        let (k, v) = p.split_once('=').ok_or_else(|| bad(format!("'{p}' is not key=value")))?;
        let v = v.trim().to_string();
        let f = |v: &str| v.parse::<f64>().map_err(|_| bad(format!("{k}: '{v}' is not a number")));
        match k.trim() {
            "rooms" => c.rooms = Some(Value::Str(v)),
            "share" => c.share = Some(f(&v)?),
            "size" => c.size = Some(Value::Str(v)),
            "senders" => c.senders = Some(f(&v)?),
            "rate" => c.rate = Some(Value::Str(v)),
            "message-size" => c.message_size = Some(Value::Str(v)),
            other => {
                return Err(bad(format!("unknown key '{other}' (rooms, share, size, senders, rate, message-size)")))
            }
        }
    }
    Ok(c)
}

fn class(c: &ClassTable, total_rooms: Option<u32>, community: u32, d: ClassDefaults) -> Result<ClassSpec> {
    let name = c.name.trim();
    let key = |k: &str| format!("room class '{name}': {k}");
    let bad = |k: &str, m: String| Error::Usage(format!("{}: {m}", key(k)));
    let ok_char = |ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-';
    if name.is_empty() || name.len() > 32 || !name.chars().all(ok_char) {
        return Err(Error::Usage(format!(
            "room class name '{name}': 1 to 32 characters of a-z, 0-9, '_' and '-' (it is a label value)"
        )));
    }
    let rooms = match (&c.rooms, c.share, total_rooms) {
        (Some(_), Some(_), _) => return Err(bad("rooms", "give rooms or share, not both".into())),
        (Some(v), None, _) => units::parse_count_u32(&v.text()).map_err(|e| bad("rooms", e))?,
        (None, Some(s), Some(total)) if (0.0..=1.0).contains(&s) => (s * total as f64).round() as u32,
        (None, Some(s), Some(_)) => return Err(bad("share", format!("{s} is not within 0 and 1"))),
        (None, Some(_), None) => {
            return Err(bad("share", "a share needs the total (--rooms or population.rooms)".into()))
        }
        (None, None, _) => return Err(bad("rooms", "give rooms (a count) or share".into())),
    };
    let size = match &c.size {
        Some(v) => Dist::parse(&v.text()).map_err(|e| bad("size", e))?,
        None => return Err(bad("size", "missing (e.g. 2, 3-30, \"200-5000 zipf 1.2\")".into())),
    };
    let (lo, hi) = size.bounds();
    if lo < 2 {
        return Err(bad("size", format!("'{size}': a room has at least 2 members")));
    }
    if hi > MAX_ROOM_SIZE {
        return Err(bad("size", format!("'{size}': at most {MAX_ROOM_SIZE} members")));
    }
    if hi > community {
        return Err(bad(
            "size",
            format!(
                "'{size}' reaches {hi} members, above the community of {community} users (--community): \
                 every room's members are in one community"
            ),
        ));
    }
    if let Some(s) = c.senders {
        if !(s > 0.0 && s <= 1.0) {
            return Err(bad("senders", format!("{s}: a share of members above 0 and at most 1")));
        }
    }
    let rate = match &c.rate {
        Some(v) => units::parse_rate(&v.text()).map_err(|e| bad("rate", e))?,
        None => d.rate,
    };
    let message_size = match &c.message_size {
        Some(v) => {
            let b = units::parse_bytes(&v.text()).map_err(|e| bad("message-size", e))?;
            if b > crate::measure::marker::MAX_MESSAGE_SIZE as u64 {
                return Err(bad("message-size", format!("{b} is above {}", crate::measure::marker::MAX_MESSAGE_SIZE)));
            }
            b as usize
        }
        None => d.size,
    };
    Ok(ClassSpec { name: name.to_string(), rooms, size, senders: c.senders, rate, message_size })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: ClassDefaults = ClassDefaults { rate: 1.0, size: 128 };

    fn table(t: &str) -> toml::Value {
        toml::Value::Table(t.parse().unwrap())
    }

    #[test]
    fn distributions_parse_and_print_back() {
        for t in ["2", "3-30", "200-5000 zipf 1.2", "1:70,2:25,3:5"] {
            assert_eq!(Dist::parse(t).unwrap().to_string(), t);
        }
        assert_eq!(Dist::parse("10-10").unwrap(), Dist::Fixed(10));
        assert_eq!(Dist::parse("2-9 zipf").unwrap(), Dist::Zipf { min: 2, max: 9, exponent: 1.0 });
        for bad in ["", "9-2", "x", "2-9 zipf -1", "2-9 pareto", "1:0,2:0", "1;2"] {
            assert!(Dist::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_table_resolves_with_flags_winning() {
        let t = table(
            "users = \"10k\"\ndevices = \"1-2\"\ncommunity = 2000\nrooms = 1000\n\
             [[class]]\nname = \"dm\"\nshare = 0.75\nsize = 2\n\
             [[class]]\nname = \"group\"\nrooms = 40\nsize = \"3-30\"\nsenders = 0.5\nrate = \"0.2\"\nmessage-size = 64\n",
        );
        let p = resolve(&PopulationArgs::default(), Some(&t), D).unwrap().unwrap();
        assert_eq!((p.users, p.community, p.devices.clone()), (10_000, 2000, Dist::Range(1, 2)));
        assert_eq!((p.classes[0].rooms, p.classes[0].rate, p.classes[0].message_size), (750, 1.0, 128));
        assert_eq!((p.classes[1].rooms, p.classes[1].senders, p.classes[1].message_size), (40, Some(0.5), 64));
        let flags = PopulationArgs {
            users: Some(500),
            room_class: vec!["ch,rooms=3,size=100-400 zipf,rate=2".into()],
            ..Default::default()
        };
        let p = resolve(&flags, Some(&t), D).unwrap().unwrap();
        assert_eq!((p.users, p.community, p.classes.len()), (500, 500, 1));
        assert_eq!(p.classes[0].size, Dist::Zipf { min: 100, max: 400, exponent: 1.0 });
    }

    #[test]
    fn no_population_without_users() {
        assert_eq!(resolve(&PopulationArgs::default(), None, D).unwrap(), None);
        let e = resolve(&PopulationArgs::default(), Some(&table("[[class]]\nname = \"dm\"")), D).unwrap_err();
        assert!(e.to_string().contains("population.users"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases = [
            ("users = 100\n[[class]]\nname = \"dm\"\nsize = 2", "rooms"),
            ("users = 100\n[[class]]\nname = \"dm\"\nshare = 0.5\nsize = 2", "population.rooms"),
            ("users = 100\n[[class]]\nname = \"ch\"\nrooms = 1\nsize = \"2-500\"", "community"),
            ("users = 100\n[[class]]\nname = \"dm\"\nrooms = 1\nsize = 1", "at least 2 members"),
            ("users = 100\n[[class]]\nname = \"Bad Name\"\nrooms = 1\nsize = 2", "room class name"),
            ("users = 100\n[[class]]\nname = \"dm\"\nrooms = 1\nsize = 2\nsenders = 1.5", "senders"),
            ("users = 100\ndevices = 0\n[[class]]\nname = \"dm\"\nrooms = 1\nsize = 2", "--devices"),
            ("users = 100\n", "at least one room class"),
            ("users = 100\n[[class]]\nname = \"a\"\nrooms = 1\nsize = 2\n[[class]]\nname = \"a\"\nrooms = 1\nsize = 2", "twice"),
        ];
        for (t, want) in cases {
            let e = resolve(&PopulationArgs::default(), Some(&table(t)), D).unwrap_err();
            assert!(e.to_string().contains(want), "{t}: {e}");
            assert_eq!(e.exit_code(), 64);
        }
        let flags =
            PopulationArgs { users: Some(10), room_class: vec!["dm,size=2,colour=red".into()], ..Default::default() };
        assert!(resolve(&flags, None, D).unwrap_err().to_string().contains("unknown key 'colour'"));
    }
}
