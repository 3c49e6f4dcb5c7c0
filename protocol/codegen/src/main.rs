//! klamm-protocol-codegen: turns Kafka's JSON message definitions into the Rust
//! message types of `klamm-protocol`.
//!
//! Usage: `cargo run -p klamm-protocol-codegen -- <message-dir> <out-dir>`, e.g.
//! `cargo run -p klamm-protocol-codegen -- /work/shared/kafka-protocol/message protocol/src/messages`.
//!
//! Outputs (all committed, all regenerated on every run):
//! - `<out-dir>/<snake_name>.rs`, one per JSON file, plus `<out-dir>/mod.rs`
//!   (re-exports, `RequestKind` / `ResponseKind` dispatch, `Request` impls);
//! - `<out-dir>/../api_key.rs` (the `ApiKey` enum);
//! - `<out-dir>/../error_code.rs` (from `<message-dir>/../error-codes.txt`);
//! - `<out-dir>/../../tests/generated_roundtrip.rs` (random-value generators and
//!   a round-trip test for every message and version).
//!
//! Which files: the request/response pairs of the client-facing APIs in
//! `CLIENT_APIS` (the keys 0-75 that a client sends, as listed in
//! docs/kafka-compatibility.md section 10), the two headers and the data
//! schemas ConsumerProtocolSubscription, ConsumerProtocolAssignment and
//! DefaultPrincipalData. Generating all 88 pairs of the spec snapshot cost
//! ~55 s of CPU for a debug build of the crate (over the ~40 s budget), so the
//! ZooKeeper-era controller RPCs (4-7), the KRaft/controller RPCs (52-54, 56,
//! 58, 59, 62-64, 67, 70, 73, 80-82) and the share-group APIs (76-79, 83-87)
//! are left out. Adding one back is a one-line change to `CLIENT_APIS`.
//!
//! Semantics follow Kafka's own generator (`generator/src/main/java/org/apache/
//! kafka/message/MessageDataGenerator.java`), with one deliberate difference:
//! encoding a field that the target version lacks silently skips it even when
//! it holds a non-default value and is not `ignorable` (the broker fills
//! response fields without checking versions). Writing `None` into a field that
//! is not nullable at the target version is still an `EncodeError`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

/// Extra data schemas (not request/response) that the broker needs.
const DATA_SCHEMAS: &[&str] = &[
    "RequestHeader",
    "ResponseHeader",
    "ConsumerProtocolSubscription",
    "ConsumerProtocolAssignment",
    "DefaultPrincipalData",
];

/// Client-facing API keys (docs/kafka-compatibility.md section 10).
const CLIENT_APIS: &[i16] = &[
    0, 1, 2, 3, // Produce, Fetch, ListOffsets, Metadata
    8, 9, 10, 11, 12, 13, 14, 15, 16, // OffsetCommit .. ListGroups
    17, 18, // SaslHandshake, ApiVersions
    19, 20, 21, 22,
    23, // CreateTopics, DeleteTopics, DeleteRecords, InitProducerId, OffsetForLeaderEpoch
    24, 25, 26, 27,
    28, // AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, WriteTxnMarkers, TxnOffsetCommit
    29, 30, 31, // DescribeAcls, CreateAcls, DeleteAcls
    32, 33, 34, 35, 36,
    37, // DescribeConfigs, AlterConfigs, AlterReplicaLogDirs, DescribeLogDirs, SaslAuthenticate, CreatePartitions
    38, 39, 40, 41, // delegation tokens
    42, 43, 44, 45, 46,
    47, // DeleteGroups, ElectLeaders, IncrementalAlterConfigs, Alter/ListPartitionReassignments, OffsetDelete
    48, 49, 50, 51, // client quotas, SCRAM credentials
    55, 57, 60, 61, // DescribeQuorum, UpdateFeatures, DescribeCluster, DescribeProducers
    65, 66, 68,
    69, // DescribeTransactions, ListTransactions, ConsumerGroupHeartbeat, ConsumerGroupDescribe
    71, 72, 74,
    75, // GetTelemetrySubscriptions, PushTelemetry, ListClientMetricsResources, DescribeTopicPartitions
];

const VMAX: i16 = i16::MAX;

/// An inclusive version range; `lo > hi` means "none".
#[derive(Clone, Copy, Debug)]
struct Versions {
    lo: i16,
    hi: i16,
}

impl Versions {
    const NONE: Versions = Versions { lo: 1, hi: 0 };

    fn parse(s: &str) -> Result<Versions> {
        let s = s.trim();
        if s == "none" {
            return Ok(Versions::NONE);
        }
        if let Some(a) = s.strip_suffix('+') {
            return Ok(Versions {
                lo: a.parse()?,
                hi: VMAX,
            });
        }
        if let Some((a, b)) = s.split_once('-') {
            return Ok(Versions {
                lo: a.parse()?,
                hi: b.parse()?,
            });
        }
        let a: i16 = s.parse().with_context(|| format!("bad versions {s:?}"))?;
        Ok(Versions { lo: a, hi: a })
    }

    fn contains(&self, v: i16) -> bool {
        self.lo <= v && v <= self.hi
    }
}

#[derive(Clone, Debug)]
enum Ty {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U16,
    U32,
    F64,
    Str,
    Bytes,
    Records,
    Uuid,
    Struct(String),
    Array(Box<Ty>),
}

impl Ty {
    fn parse(s: &str) -> Ty {
        if let Some(e) = s.strip_prefix("[]") {
            return Ty::Array(Box::new(Ty::parse(e)));
        }
        match s {
            "bool" => Ty::Bool,
            "int8" => Ty::I8,
            "int16" => Ty::I16,
            "int32" => Ty::I32,
            "int64" => Ty::I64,
            "uint16" => Ty::U16,
            "uint32" => Ty::U32,
            "float64" => Ty::F64,
            "string" => Ty::Str,
            "bytes" => Ty::Bytes,
            "records" => Ty::Records,
            "uuid" => Ty::Uuid,
            other => Ty::Struct(other.to_string()),
        }
    }

    fn rust(&self) -> String {
        match self {
            Ty::Bool => "bool".into(),
            Ty::I8 => "i8".into(),
            Ty::I16 => "i16".into(),
            Ty::I32 => "i32".into(),
            Ty::I64 => "i64".into(),
            Ty::U16 => "u16".into(),
            Ty::U32 => "u32".into(),
            Ty::F64 => "f64".into(),
            Ty::Str => "String".into(),
            Ty::Bytes | Ty::Records => "Bytes".into(),
            Ty::Uuid => "Uuid".into(),
            Ty::Struct(n) => n.clone(),
            Ty::Array(e) => format!("Vec<{}>", e.rust()),
        }
    }

    fn prim_suffix(&self) -> Option<&'static str> {
        Some(match self {
            Ty::Bool => "bool",
            Ty::I8 => "i8",
            Ty::I16 => "i16",
            Ty::I32 => "i32",
            Ty::I64 => "i64",
            Ty::U16 => "u16",
            Ty::U32 => "u32",
            Ty::F64 => "f64",
            _ => return None,
        })
    }
}

#[derive(Clone, Debug)]
struct Field {
    name: String,
    rust_name: String,
    ty: Ty,
    versions: Versions,
    nullable: Versions,
    tagged: Versions,
    tag: Option<u32>,
    flex_override: Option<Versions>,
    default: Option<Value>,
    about: String,
}

impl Field {
    /// Any version nullable: the Rust type is an `Option`.
    fn is_option(&self) -> bool {
        matches!(self.ty, Ty::Records)
            || (self.nullable.lo <= self.nullable.hi
                && matches!(self.ty, Ty::Str | Ty::Bytes | Ty::Array(_) | Ty::Struct(_)))
    }

    fn rust_type(&self) -> String {
        if self.is_option() {
            format!("Option<{}>", self.ty.rust())
        } else {
            self.ty.rust()
        }
    }

    fn default_is_null(&self) -> bool {
        matches!(&self.default, Some(Value::String(s)) if s == "null")
            || matches!(self.ty, Ty::Records)
    }

    fn default_str(&self) -> Option<String> {
        match &self.default {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => Some(v.to_string()),
        }
    }

    /// Rust expression of the JSON default value.
    fn default_expr(&self) -> Result<String> {
        let d = self.default_str();
        let base = match &self.ty {
            Ty::Bool => match d.as_deref() {
                None | Some("false") => "false".to_string(),
                Some("true") => "true".to_string(),
                Some(o) => bail!("bad bool default {o} for {}", self.name),
            },
            Ty::I8 | Ty::I16 | Ty::I32 | Ty::I64 | Ty::U16 | Ty::U32 => {
                let v: i64 = match d.as_deref() {
                    None => 0,
                    Some(s) => {
                        if let Some(h) = s.strip_prefix("0x") {
                            i64::from_str_radix(h, 16)?
                        } else {
                            s.trim()
                                .parse()
                                .with_context(|| format!("default of {}", self.name))?
                        }
                    }
                };
                format!("{v}")
            }
            Ty::F64 => match d.as_deref() {
                None => "0.0".to_string(),
                Some(s) => format!("{:?}", s.parse::<f64>()?),
            },
            Ty::Uuid => "Uuid::ZERO".to_string(),
            Ty::Str => {
                if self.is_option() && self.default_is_null() {
                    return Ok("None".into());
                }
                match d.as_deref() {
                    None | Some("") => "String::new()".to_string(),
                    Some(s) => format!("String::from({s:?})"),
                }
            }
            Ty::Bytes | Ty::Records => {
                if self.is_option() && self.default_is_null() {
                    return Ok("None".into());
                }
                "Bytes::new()".to_string()
            }
            Ty::Array(_) => {
                if self.is_option() && self.default_is_null() {
                    return Ok("None".into());
                }
                "Vec::new()".to_string()
            }
            Ty::Struct(n) => {
                if self.is_option() && self.default_is_null() {
                    return Ok("None".into());
                }
                format!("{n}::default()")
            }
        };
        Ok(if self.is_option() {
            format!("Some({base})")
        } else {
            base
        })
    }
}

#[derive(Clone, Debug)]
struct StructDef {
    name: String,
    fields: Vec<Field>,
}

struct Message {
    file_stem: String,
    module: String,
    name: String,
    kind: String,
    api_key: Option<i16>,
    valid: Versions,
    flexible: Versions,
    /// Top-level struct first, then nested and common structs.
    structs: Vec<StructDef>,
}

fn snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = if i > 0 { Some(chars[i - 1]) } else { None };
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_ascii_uppercase() => next.is_some_and(|n| n.is_ascii_lowercase()),
                _ => false,
            };
            if boundary && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

const KEYWORDS: &[&str] = &[
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

fn ident(name: &str) -> String {
    let s = snake(name);
    if KEYWORDS.contains(&s.as_str()) {
        format!("r#{s}")
    } else {
        s
    }
}

fn strip_comments(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn vstr(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(|x| x.as_str()).map(|s| s.to_string())
}

fn parse_fields(arr: &Value, structs: &mut Vec<StructDef>, ctx: &str) -> Result<Vec<Field>> {
    let mut out = Vec::new();
    let arr = match arr.as_array() {
        Some(a) => a,
        None => return Ok(out),
    };
    for f in arr {
        let name = vstr(f, "name").ok_or_else(|| anyhow!("field without name in {ctx}"))?;
        let ty_s = vstr(f, "type").ok_or_else(|| anyhow!("field {name} without type"))?;
        let ty = Ty::parse(ty_s.trim());
        let versions =
            Versions::parse(&vstr(f, "versions").ok_or_else(|| anyhow!("{name}: no versions"))?)?;
        let nullable = match vstr(f, "nullableVersions") {
            Some(s) => Versions::parse(&s)?,
            None => Versions::NONE,
        };
        let tagged = match vstr(f, "taggedVersions") {
            Some(s) => Versions::parse(&s)?,
            None => Versions::NONE,
        };
        let tag = match f.get("tag") {
            None => None,
            Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(|| anyhow!("bad tag"))? as u32),
            Some(Value::String(s)) => Some(s.trim().parse()?),
            Some(o) => bail!("bad tag {o}"),
        };
        let flex_override = match vstr(f, "flexibleVersions") {
            Some(s) => Some(Versions::parse(&s)?),
            None => None,
        };
        if let Some(sub) = f.get("fields") {
            let sname = match &ty {
                Ty::Struct(n) => n.clone(),
                Ty::Array(e) => match &**e {
                    Ty::Struct(n) => n.clone(),
                    _ => bail!("{name}: fields on non-struct array"),
                },
                _ => bail!("{name}: fields on non-struct"),
            };
            let fields = parse_fields(sub, structs, &sname)?;
            if structs.iter().any(|s| s.name == sname) {
                bail!("duplicate struct {sname} in {ctx}");
            }
            structs.push(StructDef {
                name: sname,
                fields,
            });
        }
        out.push(Field {
            rust_name: ident(&name),
            name,
            ty,
            versions,
            nullable,
            tagged,
            tag,
            flex_override,
            default: f.get("default").cloned(),
            about: vstr(f, "about").unwrap_or_default(),
        });
    }
    Ok(out)
}

fn load(path: &Path) -> Result<Message> {
    let text = std::fs::read_to_string(path)?;
    let v: Value = serde_json::from_str(&strip_comments(&text))
        .with_context(|| format!("parsing {}", path.display()))?;
    let name = vstr(&v, "name").ok_or_else(|| anyhow!("no name"))?;
    let kind = vstr(&v, "type").ok_or_else(|| anyhow!("no type"))?;
    let valid =
        Versions::parse(&vstr(&v, "validVersions").ok_or_else(|| anyhow!("no validVersions"))?)?;
    let flexible = Versions::parse(&vstr(&v, "flexibleVersions").unwrap_or_else(|| "none".into()))?;
    let api_key = v.get("apiKey").and_then(|x| x.as_i64()).map(|x| x as i16);
    let mut structs = Vec::new();
    let top_fields = parse_fields(v.get("fields").unwrap_or(&Value::Null), &mut structs, &name)?;
    if let Some(cs) = v.get("commonStructs").and_then(|x| x.as_array()) {
        for c in cs {
            let cname = vstr(c, "name").ok_or_else(|| anyhow!("common struct without name"))?;
            let fields = parse_fields(
                c.get("fields").unwrap_or(&Value::Null),
                &mut structs,
                &cname,
            )?;
            structs.push(StructDef {
                name: cname,
                fields,
            });
        }
    }
    structs.insert(
        0,
        StructDef {
            name: name.clone(),
            fields: top_fields,
        },
    );
    let file_stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    Ok(Message {
        module: snake(&file_stem),
        file_stem,
        name,
        kind,
        api_key,
        valid,
        flexible,
        structs,
    })
}

// ---------------------------------------------------------------------------
// Version-set conditions
// ---------------------------------------------------------------------------

/// Which versions of `valid` satisfy `pred`, as a Rust boolean expression over
/// `v` (or `true` / `false` when constant across the valid range).
fn cond(valid: Versions, pred: impl Fn(i16) -> bool) -> String {
    let set: Vec<i16> = (valid.lo..=valid.hi).filter(|&v| pred(v)).collect();
    if set.is_empty() {
        return "false".into();
    }
    if set.len() as i32 == (valid.hi - valid.lo + 1) as i32 {
        return "true".into();
    }
    // Contiguous ranges.
    let mut ranges: Vec<(i16, i16)> = Vec::new();
    for v in set {
        match ranges.last_mut() {
            Some(r) if r.1 + 1 == v => r.1 = v,
            _ => ranges.push((v, v)),
        }
    }
    let parts: Vec<String> = ranges
        .iter()
        .map(|&(a, b)| {
            let lo = a > valid.lo;
            let hi = b < valid.hi;
            match (lo, hi) {
                (true, true) if a == b => format!("v == {a}"),
                (true, true) => format!("(v >= {a} && v <= {b})"),
                (true, false) => format!("v >= {a}"),
                (false, true) => format!("v <= {b}"),
                (false, false) => "true".into(),
            }
        })
        .collect();
    if parts.len() == 1 {
        return parts[0]
            .trim_start_matches('(')
            .trim_end_matches(')')
            .to_string();
    }
    parts.join(" || ")
}

fn and(a: &str, b: &str) -> String {
    match (a, b) {
        ("false", _) | (_, "false") => "false".into(),
        ("true", x) | (x, "true") => x.to_string(),
        (x, y) => format!("({x}) && ({y})"),
    }
}

struct Ctx<'a> {
    msg: &'a Message,
}

impl Ctx<'_> {
    fn flexible(&self, v: i16) -> bool {
        self.msg.flexible.contains(v)
    }
    fn field_flexible(&self, f: &Field, v: i16) -> bool {
        match f.flex_override {
            Some(o) => o.contains(v),
            None => self.flexible(v),
        }
    }
    fn is_tagged_at(&self, f: &Field, v: i16) -> bool {
        f.tag.is_some() && f.versions.contains(v) && f.tagged.contains(v) && self.flexible(v)
    }
    fn is_regular_at(&self, f: &Field, v: i16) -> bool {
        f.versions.contains(v) && !self.is_tagged_at(f, v)
    }
    fn c(&self, p: impl Fn(i16) -> bool) -> String {
        cond(self.msg.valid, p)
    }
    /// The `flex` argument for a field: the struct's `flex` unless overridden.
    fn fx(&self, f: &Field) -> String {
        if f.flex_override.is_some() {
            self.c(|v| self.field_flexible(f, v))
        } else {
            let all = self.c(|v| self.flexible(v));
            if all == "true" || all == "false" {
                all
            } else {
                "flex".into()
            }
        }
    }
    fn nullable(&self, f: &Field) -> String {
        self.c(|v| f.nullable.contains(v))
    }
}

fn fname(s: &StructDef, f: &Field) -> String {
    format!("\"{}.{}\"", s.name, f.rust_name.trim_start_matches("r#"))
}

/// Statement(s) encoding `self.<field>` into `buf` (a `&mut BytesMut`).
fn enc_field(cx: &Ctx, s: &StructDef, f: &Field, fx: &str) -> String {
    let n = fname(s, f);
    let val = format!("self.{}", f.rust_name);
    let nl = cx.nullable(f);
    match &f.ty {
        t if t.prim_suffix().is_some() => {
            format!("put_{}(buf, {val});", t.prim_suffix().unwrap_or(""))
        }
        Ty::Uuid => format!("put_uuid(buf, &{val});"),
        Ty::Str if f.is_option() => {
            format!("put_opt_string(buf, {val}.as_deref(), {fx}, {nl}, {n}, v)?;")
        }
        Ty::Str => format!("put_string(buf, &{val}, {fx}, {n})?;"),
        Ty::Bytes if f.is_option() => {
            format!("put_opt_bytes(buf, {val}.as_deref(), {fx}, {nl}, {n}, v)?;")
        }
        Ty::Bytes => format!("put_bytes(buf, &{val}, {fx}, {n})?;"),
        // Records may be left out of the buffer (see klamm_protocol::left_out).
        Ty::Records if f.is_option() => {
            format!("put_opt_records(buf, {val}.as_deref(), {fx}, {nl}, {n}, v)?;")
        }
        Ty::Records => format!("put_records(buf, &{val}, {fx}, {n})?;"),
        Ty::Struct(_) if f.is_option() => {
            format!("put_opt_struct(buf, {val}.as_ref(), v, {nl}, {n})?;")
        }
        Ty::Struct(_) => format!("{val}.encode(buf, v)?;"),
        Ty::Array(_) if f.is_option() => {
            format!("put_opt_array(buf, {val}.as_deref(), v, {fx}, {nl}, {n})?;")
        }
        Ty::Array(_) => format!("put_array(buf, &{val}, v, {fx}, {n})?;"),
        _ => unreachable!(),
    }
}

/// Expression decoding the field from `buf` (a `&mut Bytes`), of type `Result<T, DecodeError>`.
fn dec_field(cx: &Ctx, s: &StructDef, f: &Field, fx: &str) -> String {
    let n = fname(s, f);
    let nl = cx.nullable(f);
    match &f.ty {
        t if t.prim_suffix().is_some() => {
            format!("get_{}(buf, {n})", t.prim_suffix().unwrap_or(""))
        }
        Ty::Uuid => format!("get_uuid(buf, {n})"),
        Ty::Str if f.is_option() => format!("get_opt_string(buf, {fx}, {nl}, {n})"),
        Ty::Str => format!("get_string(buf, {fx}, {n})"),
        Ty::Bytes | Ty::Records if f.is_option() => format!("get_opt_bytes(buf, {fx}, {nl}, {n})"),
        Ty::Bytes | Ty::Records => format!("get_bytes(buf, {fx}, {n})"),
        Ty::Struct(_) if f.is_option() => format!("get_opt_struct(buf, v, {nl}, {n})"),
        Ty::Struct(t) => format!("{t}::decode(buf, v)"),
        Ty::Array(_) if f.is_option() => format!("get_opt_array(buf, v, {fx}, {nl}, {n})"),
        Ty::Array(_) => format!("get_array(buf, v, {fx}, {n})"),
        _ => unreachable!(),
    }
}

fn doc_lines(out: &mut String, indent: &str, text: &str) {
    for l in text.lines() {
        let _ = writeln!(out, "{indent}/// {}", l.trim());
    }
}

fn gen_struct(cx: &Ctx, s: &StructDef, top: bool, out: &mut String) -> Result<()> {
    let msg = cx.msg;
    // Struct definition.
    if top {
        let _ = writeln!(
            out,
            "/// `{}` ({}; valid versions {}-{}, flexible {}).",
            s.name,
            msg.file_stem,
            msg.valid.lo,
            msg.valid.hi,
            if msg.flexible.lo > msg.flexible.hi {
                "never".to_string()
            } else {
                format!("{}+", msg.flexible.lo)
            }
        );
    } else {
        let _ = writeln!(out, "/// Nested struct `{}` of `{}`.", s.name, msg.name);
    }
    out.push_str("#[derive(Clone, Debug, PartialEq)]\n");
    let _ = writeln!(out, "pub struct {} {{", s.name);
    for f in &s.fields {
        let mut about = f.about.clone();
        let mut extra = format!("Versions {}", vdesc(f.versions));
        if f.nullable.lo <= f.nullable.hi {
            extra += &format!(", nullable {}", vdesc(f.nullable));
        }
        if let Some(t) = f.tag {
            extra += &format!(", tag {t} in {}", vdesc(f.tagged));
        }
        if about.is_empty() {
            about = f.name.clone();
        }
        doc_lines(out, "    ", &format!("{about} ({extra})"));
        let _ = writeln!(out, "    pub {}: {},", f.rust_name, f.rust_type());
    }
    out.push_str(
        "    /// Tagged fields this version of the codec does not know, kept for round trips.\n",
    );
    out.push_str("    pub unknown_tagged_fields: Vec<(u32, Bytes)>,\n}\n\n");

    // Default.
    let _ = writeln!(
        out,
        "impl Default for {} {{\n    fn default() -> Self {{\n        Self {{",
        s.name
    );
    for f in &s.fields {
        let _ = writeln!(out, "            {}: {},", f.rust_name, f.default_expr()?);
    }
    out.push_str("            unknown_tagged_fields: Vec::new(),\n        }\n    }\n}\n\n");

    let flex_all = cx.c(|v| cx.flexible(v));
    let vcheck = |err: &str| -> String {
        if top {
            format!(
                "        if !({}..={}).contains(&v) {{ return Err({err}::UnsupportedVersion {{ message: \"{}\", version: v }}); }}\n",
                msg.valid.lo, msg.valid.hi, s.name
            )
        } else {
            String::new()
        }
    };
    let tagged: Vec<&Field> = {
        let mut t: Vec<&Field> = s
            .fields
            .iter()
            .filter(|f| cx.c(|v| cx.is_tagged_at(f, v)) != "false")
            .collect();
        t.sort_by_key(|f| f.tag);
        t
    };

    // Encode.
    let _ = writeln!(out, "impl Encode for {} {{", s.name);
    out.push_str("    fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError> {\n        let v = version;\n");
    out.push_str(&vcheck("EncodeError"));
    if flex_all != "true" && flex_all != "false" {
        let _ = writeln!(out, "        let flex = {flex_all};");
    }
    for f in &s.fields {
        let c = cx.c(|v| cx.is_regular_at(f, v));
        if c == "false" {
            continue;
        }
        let fx = cx.fx(f);
        let st = enc_field(cx, s, f, &fx);
        if c == "true" {
            let _ = writeln!(out, "        {st}");
        } else {
            let _ = writeln!(out, "        if {c} {{ {st} }}");
        }
    }
    if flex_all != "false" {
        let flex_var = if flex_all == "true" { "true" } else { "flex" };
        if tagged.is_empty() {
            let _ = writeln!(
                out,
                "        if {flex_var} {{ put_unknown_tags(buf, &self.unknown_tagged_fields, \"{}\")?; }}",
                s.name
            );
        } else {
            let _ = writeln!(
                out,
                "        if {flex_var} {{\n            let mut tw = TagWriter::new();"
            );
            for f in &tagged {
                let c = cx.c(|v| cx.is_tagged_at(f, v));
                let fx = cx.fx(f);
                let st = enc_field(cx, s, f, &fx);
                let _ = writeln!(
                    out,
                    "            if {} {{ let mut tb = BytesMut::new(); {{ let buf = &mut tb; {st} }} tw.add({}, tb); }}",
                    and(&c, &format!("self.{} != {}", f.rust_name, f.default_expr()?)),
                    f.tag.unwrap_or(0)
                );
            }
            let _ = writeln!(
                out,
                "            tw.finish(buf, &self.unknown_tagged_fields, \"{}\")?;\n        }}",
                s.name
            );
        }
    }
    out.push_str("        Ok(())\n    }\n}\n\n");

    // Decode.
    let _ = writeln!(out, "impl Decode for {} {{", s.name);
    out.push_str("    fn decode(buf: &mut Bytes, version: i16) -> Result<Self, DecodeError> {\n        let v = version;\n");
    out.push_str(&vcheck("DecodeError"));
    if flex_all != "true" && flex_all != "false" {
        let _ = writeln!(out, "        let flex = {flex_all};");
    }
    out.push_str("        let mut this = Self::default();\n");
    for f in &s.fields {
        let c = cx.c(|v| cx.is_regular_at(f, v));
        if c == "false" {
            continue;
        }
        let fx = cx.fx(f);
        let st = format!("this.{} = {}?;", f.rust_name, dec_field(cx, s, f, &fx));
        if c == "true" {
            let _ = writeln!(out, "        {st}");
        } else {
            let _ = writeln!(out, "        if {c} {{ {st} }}");
        }
    }
    if flex_all != "false" {
        let flex_var = if flex_all == "true" { "true" } else { "flex" };
        if tagged.is_empty() {
            let _ = writeln!(
                out,
                "        if {flex_var} {{ get_unknown_tags(buf, \"{}\", &mut this.unknown_tagged_fields)?; }}",
                s.name
            );
        } else {
            let _ = writeln!(
                out,
                "        if {flex_var} {{\n            let mut tr = TagReader::new(buf, \"{}\")?;\n            while let Some((tag, mut d)) = tr.next(buf)? {{\n                let size = d.len();\n                match tag {{",
                s.name
            );
            for f in &tagged {
                let c = cx.c(|v| cx.is_tagged_at(f, v));
                let fx = cx.fx(f);
                let guard = if c == "true" {
                    String::new()
                } else {
                    format!(" if {c}")
                };
                let _ = writeln!(
                    out,
                    "                    {}{guard} => {{ {{ let buf = &mut d; this.{} = {}?; }} finish_tag(&d, tag, size, \"{}\")?; }}",
                    f.tag.unwrap_or(0),
                    f.rust_name,
                    dec_field(cx, s, f, &fx),
                    s.name
                );
            }
            out.push_str("                    _ => this.unknown_tagged_fields.push((tag, d)),\n                }\n            }\n        }\n");
        }
    }
    out.push_str("        Ok(this)\n    }\n}\n\n");
    let used_in_array =
        msg.structs.iter().flat_map(|x| x.fields.iter()).any(
            |f| matches!(&f.ty, Ty::Array(e) if matches!(&**e, Ty::Struct(n) if *n == s.name)),
        );
    if !used_in_array {
        return Ok(());
    }
    let _ = writeln!(
        out,
        "impl Elem for {n} {{\n    fn read_elem(buf: &mut Bytes, v: i16, _: bool, _: &'static str) -> Result<Self, DecodeError> {{ Self::decode(buf, v) }}\n    fn write_elem(&self, buf: &mut BytesMut, v: i16, _: bool, _: &'static str) -> Result<(), EncodeError> {{ self.encode(buf, v) }}\n}}\n",
        n = s.name
    );
    Ok(())
}

fn vdesc(v: Versions) -> String {
    if v.lo > v.hi {
        "none".into()
    } else if v.hi == VMAX {
        format!("{}+", v.lo)
    } else if v.lo == v.hi {
        format!("{}", v.lo)
    } else {
        format!("{}-{}", v.lo, v.hi)
    }
}

fn header(source: &str) -> String {
    format!(
        "// @generated by klamm-protocol-codegen from Kafka's JSON message definitions\n// ({source}). Do not edit by hand: run\n// `cargo run -p klamm-protocol-codegen -- /work/shared/kafka-protocol/message protocol/src/messages`.\n"
    )
}

fn gen_message(m: &Message, source: &str) -> Result<String> {
    let cx = Ctx { msg: m };
    let mut out = header(source);
    let _ = writeln!(
        out,
        "\n//! `{}` ({}.json) and its nested structs.\n",
        m.name, m.file_stem
    );
    out.push_str(
        "#![allow(unused_variables, unused_mut, unused_imports, unused_parens, clippy::all)]\n\n",
    );
    out.push_str("use bytes::{Bytes, BytesMut};\n\nuse crate::error::{DecodeError, EncodeError};\nuse crate::primitives::*;\nuse crate::{Decode, Encode};\n\n");
    // Check that every referenced struct exists.
    let names: Vec<&str> = m.structs.iter().map(|s| s.name.as_str()).collect();
    for s in &m.structs {
        for f in &s.fields {
            let t = match &f.ty {
                Ty::Struct(n) => Some(n),
                Ty::Array(e) => match &**e {
                    Ty::Struct(n) => Some(n),
                    _ => None,
                },
                _ => None,
            };
            if let Some(t) = t {
                if !names.contains(&t.as_str()) {
                    bail!("{}: unknown struct type {t}", m.name);
                }
            }
        }
    }
    for (i, s) in m.structs.iter().enumerate() {
        gen_struct(&cx, s, i == 0, &mut out)?;
    }
    Ok(out)
}

fn api_name(m: &Message) -> String {
    m.name
        .trim_end_matches("Request")
        .trim_end_matches("Response")
        .to_string()
}

struct Api<'a> {
    key: i16,
    name: String,
    req: &'a Message,
    resp: &'a Message,
}

fn gen_mod(msgs: &[Message], apis: &[Api], source: &str) -> String {
    let mut out = header(source);
    out.push_str("\n//! Generated Kafka messages: one module per JSON definition, re-exports of\n//! the top-level types, and the `RequestKind` / `ResponseKind` dispatch enums.\n//!\n//! Encoding a field that the target version does not have silently skips it\n//! (the broker fills response fields without checking versions); encoding\n//! `None` into a field that is not nullable at that version is an error.\n\n");
    out.push_str("#![allow(clippy::all)]\n\nuse bytes::{Bytes, BytesMut};\n\nuse crate::api_key::ApiKey;\nuse crate::error::{DecodeError, EncodeError};\nuse crate::{Decode, Encode, Request};\n\n");
    for m in msgs {
        let _ = writeln!(out, "pub mod {};", m.module);
    }
    out.push('\n');
    for m in msgs {
        let _ = writeln!(out, "pub use {}::{};", m.module, m.name);
    }
    out.push('\n');
    for a in apis {
        let _ = writeln!(
            out,
            "impl Request for {} {{\n    const API_KEY: ApiKey = ApiKey::{};\n    type Response = {};\n}}\n",
            a.req.name, a.name, a.resp.name
        );
    }
    for (kind, pick) in [("Request", true), ("Response", false)] {
        let _ = writeln!(
            out,
            "/// Any {} body, tagged by API.\n#[derive(Clone, Debug, PartialEq)]\npub enum {kind}Kind {{",
            kind.to_lowercase()
        );
        for a in apis {
            let m = if pick { a.req } else { a.resp };
            let _ = writeln!(out, "    {}({}),", a.name, m.name);
        }
        out.push_str("}\n\n");
        let _ = writeln!(out, "impl {kind}Kind {{");
        let _ = writeln!(
            out,
            "    /// Decodes the body of `api_key` at `version` (the header must already be consumed).\n    pub fn decode(api_key: ApiKey, version: i16, buf: &mut Bytes) -> Result<Self, DecodeError> {{\n        Ok(match api_key {{"
        );
        for a in apis {
            let m = if pick { a.req } else { a.resp };
            let _ = writeln!(
                out,
                "            ApiKey::{n} => Self::{n}({}::decode(buf, version)?),",
                m.name,
                n = a.name
            );
        }
        out.push_str("        })\n    }\n\n");
        out.push_str("    /// Encodes the body at `version`.\n    pub fn encode(&self, buf: &mut BytesMut, version: i16) -> Result<(), EncodeError> {\n        match self {\n");
        for a in apis {
            let _ = writeln!(
                out,
                "            Self::{}(m) => m.encode(buf, version),",
                a.name
            );
        }
        out.push_str("        }\n    }\n\n");
        out.push_str("    /// The API this body belongs to.\n    pub fn api_key(&self) -> ApiKey {\n        match self {\n");
        for a in apis {
            let _ = writeln!(out, "            Self::{n}(_) => ApiKey::{n},", n = a.name);
        }
        out.push_str("        }\n    }\n}\n\n");
        for a in apis {
            let m = if pick { a.req } else { a.resp };
            let _ = writeln!(
                out,
                "impl From<{t}> for {kind}Kind {{\n    fn from(m: {t}) -> Self {{\n        Self::{}(m)\n    }}\n}}\n",
                a.name,
                t = m.name
            );
        }
    }
    out
}

fn gen_api_key(apis: &[Api], source: &str) -> String {
    let mut out = header(source);
    out.push_str("\n//! Kafka API keys of every generated request/response pair, with the spec's\n//! version ranges and the header version each API version uses\n//! (docs/kafka-compatibility.md section 1).\n\n");
    out.push_str("use std::fmt;\n\n/// A Kafka API key.\n#[derive(Copy, Clone, Eq, PartialEq, Hash, Ord, PartialOrd, Debug)]\n#[repr(i16)]\npub enum ApiKey {\n");
    for a in apis {
        let _ = writeln!(out, "    {} = {},", a.name, a.key);
    }
    out.push_str("}\n\nimpl ApiKey {\n    /// Every API key, in key order.\n    pub const ALL: &'static [ApiKey] = &[\n");
    for a in apis {
        let _ = writeln!(out, "        ApiKey::{},", a.name);
    }
    out.push_str("    ];\n\n    /// The wire value.\n    pub fn as_i16(self) -> i16 {\n        self as i16\n    }\n\n");
    out.push_str("    /// The API name as Kafka spells it (`\"Produce\"`).\n    pub fn name(self) -> &'static str {\n        match self {\n");
    for a in apis {
        let _ = writeln!(out, "            ApiKey::{n} => \"{n}\",", n = a.name);
    }
    out.push_str("        }\n    }\n\n    /// `validVersions` of the JSON spec (the codec's range, not what the broker advertises).\n    pub fn spec_versions(self) -> (i16, i16) {\n        match self {\n");
    for a in apis {
        let _ = writeln!(
            out,
            "            ApiKey::{} => ({}, {}),",
            a.name, a.req.valid.lo, a.req.valid.hi
        );
    }
    out.push_str("        }\n    }\n\n    /// First flexible version, or `None` if the API never is flexible.\n    pub fn first_flexible_version(self) -> Option<i16> {\n        match self {\n");
    for a in apis {
        let f = a.req.flexible;
        let s = if f.lo > f.hi {
            "None".to_string()
        } else {
            format!("Some({})", f.lo)
        };
        let _ = writeln!(out, "            ApiKey::{} => {s},", a.name);
    }
    out.push_str("        }\n    }\n\n");
    out.push_str("    /// Request header version for `version`: 2 if flexible, else 1; ControlledShutdown v0 uses 0.\n    pub fn request_header_version(self, version: i16) -> i16 {\n        // ControlledShutdown (key 7) v0 predates client ids; the key is not\n        // generated any more, but the rule stays for completeness.\n        if self.as_i16() == 7 && version == 0 {\n            return 0;\n        }\n        match self.first_flexible_version() {\n            Some(f) if version >= f => 2,\n            _ => 1,\n        }\n    }\n\n");
    out.push_str("    /// Response header version for `version`: 1 if flexible, else 0. ApiVersions responses\n    /// always use 0 (KIP-511: a client must be able to read the error of any version).\n    pub fn response_header_version(self, version: i16) -> i16 {\n        if self == ApiKey::ApiVersions {\n            return 0;\n        }\n        match self.first_flexible_version() {\n            Some(f) if version >= f => 1,\n            _ => 0,\n        }\n    }\n}\n\n");
    out.push_str("impl TryFrom<i16> for ApiKey {\n    type Error = i16;\n\n    /// Fails with the unknown key itself.\n    fn try_from(k: i16) -> Result<Self, i16> {\n        Ok(match k {\n");
    for a in apis {
        let _ = writeln!(out, "            {} => ApiKey::{},", a.key, a.name);
    }
    out.push_str("            other => return Err(other),\n        })\n    }\n}\n\nimpl From<ApiKey> for i16 {\n    fn from(k: ApiKey) -> i16 {\n        k as i16\n    }\n}\n\nimpl fmt::Display for ApiKey {\n    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {\n        f.write_str(self.name())\n    }\n}\n");
    out
}

/// Error codes the Java client treats as retriable (its exception class extends
/// `RetriableException`, directly or via `InvalidMetadataException`;
/// AK `clients/src/main/java/org/apache/kafka/common/errors/*.java`;
/// docs/kafka-compatibility.md section 9).
const RETRIABLE: &[&str] = &[
    "CORRUPT_MESSAGE",
    "UNKNOWN_TOPIC_OR_PARTITION",
    "LEADER_NOT_AVAILABLE",
    "NOT_LEADER_OR_FOLLOWER",
    "REQUEST_TIMED_OUT",
    "REPLICA_NOT_AVAILABLE",
    "NETWORK_EXCEPTION",
    "COORDINATOR_LOAD_IN_PROGRESS",
    "COORDINATOR_NOT_AVAILABLE",
    "NOT_COORDINATOR",
    "NOT_ENOUGH_REPLICAS",
    "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    "NOT_CONTROLLER",
    "CONCURRENT_TRANSACTIONS",
    "KAFKA_STORAGE_ERROR",
    "FETCH_SESSION_ID_NOT_FOUND",
    "INVALID_FETCH_SESSION_EPOCH",
    "LISTENER_NOT_FOUND",
    "FENCED_LEADER_EPOCH",
    "UNKNOWN_LEADER_EPOCH",
    "OFFSET_NOT_AVAILABLE",
    "PREFERRED_LEADER_NOT_AVAILABLE",
    "ELIGIBLE_LEADERS_NOT_AVAILABLE",
    "UNSTABLE_OFFSET_COMMIT",
    "THROTTLING_QUOTA_EXCEEDED",
    "UNKNOWN_TOPIC_ID",
    "INCONSISTENT_TOPIC_ID",
    "FETCH_SESSION_TOPIC_ID_ERROR",
];

fn gen_error_codes(txt: &str) -> Result<String> {
    let mut codes: Vec<(i16, String)> = Vec::new();
    for l in txt.lines() {
        let l = l.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        let mut it = l.split_whitespace();
        let (Some(c), Some(n)) = (it.next(), it.next()) else {
            bail!("bad error-codes line {l:?}");
        };
        codes.push((c.parse()?, n.to_string()));
    }
    let mut out = String::from(
        "// @generated by klamm-protocol-codegen from error-codes.txt (Kafka's `Errors` enum).\n\n//! Kafka error codes: a transparent `i16` newtype with a named constant per\n//! code, its name, and whether the Java client would retry it.\n\nuse std::fmt;\n\n/// A Kafka error code (`ErrorCode::NONE` = 0 = success). Unknown codes are kept as-is.\n#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]\npub struct ErrorCode(pub i16);\n\nimpl ErrorCode {\n",
    );
    for (c, n) in &codes {
        let _ = writeln!(
            out,
            "    /// Error code {c}.\n    pub const {n}: ErrorCode = ErrorCode({c});"
        );
    }
    out.push_str("\n    /// The wire value.\n    pub fn code(self) -> i16 {\n        self.0\n    }\n\n    /// Kafka's name for the code (`\"UNKNOWN_TOPIC_OR_PARTITION\"`), or `\"UNKNOWN\"`.\n    pub fn name(self) -> &'static str {\n        match self.0 {\n");
    for (c, n) in &codes {
        let _ = writeln!(out, "            {c} => \"{n}\",");
    }
    out.push_str("            _ => \"UNKNOWN\",\n        }\n    }\n\n    /// True for codes whose Java exception is retriable\n    /// (see docs/kafka-compatibility.md section 9).\n    pub fn is_retriable(self) -> bool {\n        matches!(\n            self,\n");
    let present: Vec<&str> = RETRIABLE
        .iter()
        .copied()
        .filter(|r| codes.iter().any(|(_, n)| n == r))
        .collect();
    for (i, r) in present.iter().enumerate() {
        let sep = if i + 1 == present.len() { "" } else { " |" };
        let _ = writeln!(out, "            ErrorCode::{r}{sep}");
    }
    out.push_str("        )\n    }\n\n    /// True for `NONE`.\n    pub fn is_ok(self) -> bool {\n        self.0 == 0\n    }\n}\n\nimpl From<i16> for ErrorCode {\n    fn from(c: i16) -> Self {\n        ErrorCode(c)\n    }\n}\n\nimpl From<ErrorCode> for i16 {\n    fn from(c: ErrorCode) -> i16 {\n        c.0\n    }\n}\n\nimpl fmt::Display for ErrorCode {\n    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {\n        write!(f, \"{} ({})\", self.name(), self.0)\n    }\n}\n");
    Ok(out)
}

// ---------------------------------------------------------------------------
// Round-trip test generation
// ---------------------------------------------------------------------------

/// Expression producing a random value of `ty` from the test `Rng` `r`.
fn gen_value(ty: &Ty) -> String {
    match ty {
        Ty::Bool => "r.bool()".into(),
        Ty::I8 => "r.next() as i8".into(),
        Ty::I16 => "r.next() as i16".into(),
        Ty::I32 => "r.next() as i32".into(),
        Ty::I64 => "r.next() as i64".into(),
        Ty::U16 => "r.next() as u16".into(),
        Ty::U32 => "r.next() as u32".into(),
        Ty::F64 => "r.f64()".into(),
        Ty::Str => "r.string()".into(),
        Ty::Bytes | Ty::Records => "r.bytes()".into(),
        Ty::Uuid => "Uuid(r.uuid())".into(),
        Ty::Struct(n) => format!("gen_{n}(r, v)"),
        Ty::Array(e) => format!("r.vec(|r| {})", gen_value(e)),
    }
}

fn gen_tests_for(m: &Message, out: &mut String) {
    let cx = Ctx { msg: m };
    let _ = writeln!(
        out,
        "mod {} {{\n    use super::*;\n    use klamm_protocol::messages::{}::*;\n",
        m.module, m.module
    );
    for s in &m.structs {
        let _ = writeln!(out, "    #[allow(unused_variables, unused_mut, non_snake_case)]\n    pub fn gen_{}(r: &mut Rng, v: i16) -> {} {{\n        let mut x = {}::default();", s.name, s.name, s.name);
        let _ = writeln!(
            out,
            "        if r.depth > 3 {{ return x; }}\n        r.depth += 1;"
        );
        for f in &s.fields {
            let c = cx.c(|v| f.versions.contains(v));
            if c == "false" {
                continue;
            }
            let val = gen_value(&f.ty);
            let val = if f.is_option() {
                let nl = cx.nullable(f);
                match nl.as_str() {
                    "false" => format!("Some({val})"),
                    "true" => format!("r.opt(|r| {val})"),
                    c => format!("if {c} {{ r.opt(|r| {val}) }} else {{ Some({val}) }}"),
                }
            } else {
                val
            };
            if c == "true" {
                let _ = writeln!(out, "        x.{} = {val};", f.rust_name);
            } else {
                let _ = writeln!(out, "        if {c} {{ x.{} = {val}; }}", f.rust_name);
            }
        }
        let flex = cx.c(|v| cx.flexible(v));
        if flex != "false" {
            let _ = writeln!(
                out,
                "        if {flex} {{ x.unknown_tagged_fields = r.tags(); }}"
            );
        }
        out.push_str("        r.depth -= 1;\n        x\n    }\n\n");
    }
    let top = &m.structs[0].name;
    let _ = writeln!(
        out,
        "    #[test]\n    fn roundtrip() {{\n        for v in {}..={} {{\n            check(v, gen_{top});\n        }}\n    }}\n}}\n",
        m.valid.lo, m.valid.hi
    );
}

const TEST_PRELUDE: &str = r#"
//! Round trip of every generated message at every valid version: a random
//! value valid for that version (absent fields at their defaults, nulls only
//! where nullable, random unknown tagged fields in flexible versions) is
//! encoded, decoded, compared, and the decoder must consume every byte.
//!
//! Values come from a small seeded generator (not proptest strategies, which
//! would make this file slow to compile); proptest drives the seeds, so a
//! failure prints the seed that reproduces it.

#![allow(clippy::all, non_snake_case)]

use bytes::{Bytes, BytesMut};
use klamm_protocol::{Decode, Encode, Uuid};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

pub struct Rng {
    s: u64,
    pub depth: u32,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { s: seed ^ 0x9e37_79b9_7f4a_7c15, depth: 0 }
    }
    /// splitmix64
    pub fn next(&mut self) -> u64 {
        self.s = self.s.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }
    pub fn f64(&mut self) -> f64 {
        (self.next() as i64 as f64) / 1024.0
    }
    pub fn string(&mut self) -> String {
        const CHARS: &[char] = &['a', 'Z', '0', '-', '.', ' ', 'é', '日', '🦀'];
        (0..self.below(6)).map(|_| CHARS[self.below(CHARS.len() as u64) as usize]).collect()
    }
    pub fn bytes(&mut self) -> Bytes {
        (0..self.below(6)).map(|_| self.next() as u8).collect::<Vec<u8>>().into()
    }
    pub fn uuid(&mut self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.next().to_le_bytes());
        b[8..].copy_from_slice(&self.next().to_le_bytes());
        b
    }
    pub fn vec<T>(&mut self, mut f: impl FnMut(&mut Self) -> T) -> Vec<T> {
        (0..self.below(3)).map(|_| f(self)).collect()
    }
    pub fn opt<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        if self.below(4) == 0 { None } else { Some(f(self)) }
    }
    /// Unknown tagged fields, above every tag the spec uses, ascending.
    pub fn tags(&mut self) -> Vec<(u32, Bytes)> {
        let mut t = Vec::new();
        let mut tag = 1000;
        for _ in 0..self.below(3) {
            tag += 1 + self.below(200) as u32;
            t.push((tag, self.bytes()));
        }
        t
    }
}

fn buf_bytes<T: Encode>(value: &T, v: i16) -> Bytes {
    let mut b = BytesMut::new();
    value.encode(&mut b, v).expect("encodes");
    b.freeze()
}

fn check<T: Encode + Decode + PartialEq + std::fmt::Debug>(v: i16, g: fn(&mut Rng, i16) -> T) {
    let mut runner = TestRunner::new(Config { cases: 16, failure_persistence: None, ..Config::default() });
    runner
        .run(&any::<u64>(), |seed| {
            let mut r = Rng::new(seed);
            let value = g(&mut r, v);
            let mut buf = BytesMut::new();
            value.encode(&mut buf, v).map_err(|e| TestCaseError::fail(format!("v{v} encode: {e}")))?;
            let mut input = buf.freeze();
            let back = T::decode(&mut input, v).map_err(|e| TestCaseError::fail(format!("v{v} decode: {e}")))?;
            prop_assert_eq!(input.len(), 0, "v{} left bytes", v);
            prop_assert_eq!(&back, &value, "v{}", v);
            // Every strict prefix must fail cleanly (all fields are mandatory),
            // and a corrupted copy must not panic.
            let full = buf_bytes(&value, v);
            for cut in 0..full.len() {
                let mut p = full.slice(..cut);
                prop_assert!(T::decode(&mut p, v).is_err(), "v{} prefix {} decoded", v, cut);
            }
            if !full.is_empty() {
                let mut m = full.to_vec();
                let i = (seed as usize) % m.len();
                m[i] ^= (seed >> 32) as u8 | 1;
                let _ = T::decode(&mut Bytes::from(m), v);
            }
            Ok(())
        })
        .unwrap();
}
"#;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        bail!(
            "usage: klamm-protocol-codegen <kafka message dir> <out dir (protocol/src/messages)>"
        );
    }
    let msg_dir = PathBuf::from(&args[1]);
    let out_dir = PathBuf::from(&args[2]);
    let src_dir = out_dir
        .parent()
        .ok_or_else(|| anyhow!("out dir has no parent"))?
        .to_path_buf();
    let crate_dir = src_dir
        .parent()
        .ok_or_else(|| anyhow!("src dir has no parent"))?
        .to_path_buf();

    // Spec provenance for the generated headers.
    let source_md = std::fs::read_to_string(msg_dir.join("../SOURCE.md")).unwrap_or_default();
    let commit = source_md
        .split(|c: char| !c.is_ascii_hexdigit())
        .find(|w| w.len() == 40)
        .unwrap_or("unknown commit")
        .to_string();
    let source =
        format!("apache/kafka clients/src/main/resources/common/message at commit {commit}");

    let mut paths: Vec<PathBuf> = std::fs::read_dir(&msg_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut msgs = Vec::new();
    for p in &paths {
        let m = load(p).with_context(|| format!("loading {}", p.display()))?;
        let keep = ((m.kind == "request" || m.kind == "response")
            && m.api_key.is_some_and(|k| CLIENT_APIS.contains(&k)))
            || DATA_SCHEMAS.contains(&m.name.as_str());
        if keep {
            msgs.push(m);
        }
    }

    // Pair requests with responses by api key.
    let mut by_key: BTreeMap<i16, (Option<usize>, Option<usize>)> = BTreeMap::new();
    for (i, m) in msgs.iter().enumerate() {
        if let Some(k) = m.api_key {
            let e = by_key.entry(k).or_default();
            if m.kind == "request" {
                e.0 = Some(i);
            } else {
                e.1 = Some(i);
            }
        }
    }
    let mut apis = Vec::new();
    for (k, (rq, rs)) in &by_key {
        let (Some(rq), Some(rs)) = (rq, rs) else {
            bail!("api key {k} lacks a request or response");
        };
        apis.push(Api {
            key: *k,
            name: api_name(&msgs[*rq]),
            req: &msgs[*rq],
            resp: &msgs[*rs],
        });
    }

    std::fs::create_dir_all(&out_dir)?;
    // Remove stale generated files so renamed/removed messages do not linger.
    for e in std::fs::read_dir(&out_dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|e| e == "rs") {
            std::fs::remove_file(&p)?;
        }
    }
    for m in &msgs {
        std::fs::write(
            out_dir.join(format!("{}.rs", m.module)),
            gen_message(m, &source)?,
        )?;
    }
    std::fs::write(out_dir.join("mod.rs"), gen_mod(&msgs, &apis, &source))?;
    std::fs::write(src_dir.join("api_key.rs"), gen_api_key(&apis, &source))?;
    let codes = std::fs::read_to_string(msg_dir.join("../error-codes.txt"))
        .context("reading error-codes.txt")?;
    std::fs::write(src_dir.join("error_code.rs"), gen_error_codes(&codes)?)?;

    let mut t = header(&source);
    t.push_str(TEST_PRELUDE);
    for m in &msgs {
        gen_tests_for(m, &mut t);
    }
    std::fs::create_dir_all(crate_dir.join("tests"))?;
    std::fs::write(crate_dir.join("tests/generated_roundtrip.rs"), t)?;
    // Best effort: keep the committed output rustfmt-clean so `cargo fmt --check`
    // stays quiet. The code is valid either way.
    let mut files: Vec<PathBuf> = vec![
        out_dir.join("mod.rs"),
        src_dir.join("api_key.rs"),
        src_dir.join("error_code.rs"),
    ];
    files.extend(
        msgs.iter()
            .map(|m| out_dir.join(format!("{}.rs", m.module))),
    );
    files.push(crate_dir.join("tests/generated_roundtrip.rs"));
    match std::process::Command::new("rustfmt")
        .arg("--edition")
        .arg("2021")
        .args(&files)
        .status()
    {
        Ok(s) if s.success() => {}
        other => {
            eprintln!("warning: rustfmt did not run cleanly ({other:?}); output left unformatted")
        }
    }
    eprintln!("generated {} messages, {} APIs", msgs.len(), apis.len());
    Ok(())
}
