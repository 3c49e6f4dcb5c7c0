//! Config metadata shared by broker and topic configs: Kafka's `ConfigType` and `ConfigSource`
//! codes, the [`ConfigEntry`] returned for DescribeConfigs, and the internal key definitions
//! (type, default, validator, documentation) that drive parsing and validation.
//!
//! Every raw value is trimmed before it is checked, as Kafka's `ConfigDef.parseType` does.

/// Where a config value came from, with Kafka's DescribeConfigs `ConfigSource` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigSource {
    /// 0
    Unknown,
    /// 1: a per-topic override.
    DynamicTopicConfig,
    /// 2: a dynamic config for this specific broker.
    DynamicBrokerConfig,
    /// 3: a dynamic cluster-wide default broker config.
    DynamicDefaultBrokerConfig,
    /// 4: set in the properties file or by `--override`.
    StaticBrokerConfig,
    /// 5: Kafka's built-in default.
    DefaultConfig,
    /// 6
    DynamicBrokerLoggerConfig,
    /// 7
    ClientMetricsConfig,
    /// 8
    GroupConfig,
}

impl ConfigSource {
    /// The wire code used in DescribeConfigs responses.
    pub fn code(&self) -> i8 {
        match self {
            ConfigSource::Unknown => 0,
            ConfigSource::DynamicTopicConfig => 1,
            ConfigSource::DynamicBrokerConfig => 2,
            ConfigSource::DynamicDefaultBrokerConfig => 3,
            ConfigSource::StaticBrokerConfig => 4,
            ConfigSource::DefaultConfig => 5,
            ConfigSource::DynamicBrokerLoggerConfig => 6,
            ConfigSource::ClientMetricsConfig => 7,
            ConfigSource::GroupConfig => 8,
        }
    }
}

/// The type of a config, with Kafka's DescribeConfigs `ConfigType` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConfigType {
    /// 0
    Unknown,
    /// 1
    Boolean,
    /// 2
    String,
    /// 3
    Int,
    /// 4
    Short,
    /// 5
    Long,
    /// 6
    Double,
    /// 7
    List,
    /// 8
    Class,
    /// 9
    Password,
}

impl ConfigType {
    /// The wire code used in DescribeConfigs responses.
    pub fn code(&self) -> i8 {
        match self {
            ConfigType::Unknown => 0,
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Class => 8,
            ConfigType::Password => 9,
        }
    }

    fn kafka_name(&self) -> &'static str {
        match self {
            ConfigType::Unknown => "UNKNOWN",
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }
}

/// One synonym of a described config, in Kafka's precedence order.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigSynonym {
    /// The property name of the synonym (a topic key or a broker key).
    pub name: String,
    /// Its value, `None` for null or sensitive.
    pub value: Option<String>,
    /// Where that value comes from.
    pub source: ConfigSource,
}

/// One entry of a DescribeConfigs result.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigEntry {
    /// The property name.
    pub name: String,
    /// The effective value as Kafka reports it; `None` for null or sensitive values.
    pub value: Option<String>,
    /// Where the effective value comes from.
    pub source: ConfigSource,
    /// True if the config cannot be altered (dynamically).
    pub read_only: bool,
    /// True for passwords and other secrets (value is then `None`).
    pub is_sensitive: bool,
    /// The config's type.
    pub config_type: ConfigType,
    /// Human documentation.
    pub documentation: Option<String>,
    /// Synonyms in precedence order, the effective one first.
    pub synonyms: Vec<ConfigSynonym>,
}

/// A validator attached to a key definition.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Check {
    None,
    AtLeast(i64),
    Between(i64, i64),
    DoubleBetween(f64, f64),
    OneOf(&'static [&'static str]),
    /// A list whose items must each be one of these (may be empty only if `allow_empty`).
    ListOf(&'static [&'static str], bool),
    /// A format of its own, checked by the function (the reason in the error).
    Format(fn(&str) -> Result<(), String>),
}

/// A typed value after parsing and checking.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
    List(Vec<String>),
}

/// Why a value was rejected; rendered in broker style or in Kafka style.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bad {
    NotType(ConfigType),
    AtLeast(i64),
    Between(i64, i64),
    DoubleBetween(f64, f64),
    OneOf(&'static [&'static str]),
    Empty,
    Format(String),
}

impl Bad {
    /// Broker-style message, used in `key: message` errors.
    pub(crate) fn broker_message(&self, raw: &str) -> String {
        let raw = raw.trim();
        match self {
            Bad::NotType(ConfigType::Boolean) => {
                format!("{raw:?} is not a boolean (true or false)")
            }
            Bad::NotType(ConfigType::Int) if raw.parse::<i128>().is_ok() => {
                format!("{raw} is out of range for a 32-bit integer")
            }
            Bad::NotType(ConfigType::Short) if raw.parse::<i128>().is_ok() => {
                format!("{raw} is out of range for a 16-bit integer")
            }
            Bad::NotType(ConfigType::Int | ConfigType::Short) => {
                format!("{raw:?} is not an integer")
            }
            Bad::NotType(ConfigType::Long) => format!("{raw:?} is not an integer"),
            Bad::NotType(ConfigType::Double) => format!("{raw:?} is not a number"),
            Bad::NotType(t) => format!("{raw:?} is not a valid {}", t.kafka_name()),
            Bad::AtLeast(min) => format!("must be at least {min}, got {raw}"),
            Bad::Between(lo, hi) => format!("must be between {lo} and {hi}, got {raw}"),
            Bad::DoubleBetween(lo, hi) => format!("must be between {lo} and {hi}, got {raw}"),
            Bad::OneOf(allowed) => {
                format!("must be one of {}, got {raw:?}", allowed.join(", "))
            }
            Bad::Empty => "must not be empty".to_string(),
            Bad::Format(reason) => reason.clone(),
        }
    }

    /// Kafka's `ConfigException` reason.
    pub(crate) fn kafka_reason(&self) -> String {
        match self {
            Bad::NotType(ConfigType::Boolean) => "Expected value to be either true or false".into(),
            Bad::NotType(t) => format!("Not a number of type {}", t.kafka_name()),
            Bad::AtLeast(min) => format!("Value must be at least {min}"),
            Bad::Between(lo, hi) => format!("Value must be in the range [{lo}, {hi}]"),
            Bad::DoubleBetween(lo, hi) => format!("Value must be in the range [{lo}, {hi}]"),
            Bad::OneOf(allowed) => format!("String must be one of: {}", allowed.join(", ")),
            Bad::Empty => "Value must not be empty".into(),
            Bad::Format(reason) => reason.clone(),
        }
    }
}

/// The definition of one known key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Def {
    pub name: &'static str,
    pub ty: ConfigType,
    /// Kafka's default, rendered as Kafka reports it; `None` = null.
    pub default: Option<&'static str>,
    pub check: Check,
    pub doc: &'static str,
    /// Can be altered dynamically cluster-wide (broker keys) / always true for topic keys.
    pub dynamic: bool,
    /// False for keys Klamm accepts but ignores.
    pub effective: bool,
}

impl Def {
    pub(crate) const fn new(
        name: &'static str,
        ty: ConfigType,
        default: Option<&'static str>,
        check: Check,
        doc: &'static str,
    ) -> Def {
        Def {
            name,
            ty,
            default,
            check,
            doc,
            dynamic: false,
            effective: true,
        }
    }

    pub(crate) const fn dynamic(self) -> Def {
        Def {
            dynamic: true,
            ..self
        }
    }

    pub(crate) const fn no_effect(self) -> Def {
        Def {
            effective: false,
            ..self
        }
    }

    pub(crate) fn sensitive(&self) -> bool {
        self.ty == ConfigType::Password
    }

    /// Parses and checks a raw value (trimmed first).
    pub(crate) fn parse(&self, raw: &str) -> Result<Value, Bad> {
        parse_typed(self.ty, self.check, raw)
    }
}

pub(crate) fn parse_typed(ty: ConfigType, check: Check, raw: &str) -> Result<Value, Bad> {
    let s = raw.trim();
    let value = match ty {
        ConfigType::Boolean => match s.to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(Bad::NotType(ty)),
        },
        ConfigType::Int => Value::Int(s.parse::<i32>().map_err(|_| Bad::NotType(ty))?.into()),
        ConfigType::Short => Value::Int(s.parse::<i16>().map_err(|_| Bad::NotType(ty))?.into()),
        ConfigType::Long => Value::Int(s.parse::<i64>().map_err(|_| Bad::NotType(ty))?),
        ConfigType::Double => {
            let d = s.parse::<f64>().map_err(|_| Bad::NotType(ty))?;
            if !d.is_finite() {
                return Err(Bad::NotType(ty));
            }
            Value::Double(d)
        }
        ConfigType::List => Value::List(split_list(s)),
        ConfigType::String | ConfigType::Class | ConfigType::Password | ConfigType::Unknown => {
            Value::Str(s.to_string())
        }
    };
    match (check, &value) {
        (Check::AtLeast(min), Value::Int(v)) if *v < min => Err(Bad::AtLeast(min)),
        (Check::Between(lo, hi), Value::Int(v)) if *v < lo || *v > hi => Err(Bad::Between(lo, hi)),
        (Check::DoubleBetween(lo, hi), Value::Double(v)) if *v < lo || *v > hi => {
            Err(Bad::DoubleBetween(lo, hi))
        }
        (Check::OneOf(allowed), Value::Str(v)) if !allowed.contains(&v.as_str()) => {
            Err(Bad::OneOf(allowed))
        }
        (Check::ListOf(allowed, allow_empty), Value::List(items)) => {
            if items.is_empty() && !allow_empty {
                return Err(Bad::Empty);
            }
            if items.iter().any(|i| !allowed.contains(&i.as_str())) {
                return Err(Bad::OneOf(allowed));
            }
            Ok(value)
        }
        (Check::Format(check), Value::Str(v)) => check(v).map(|()| value.clone()).map_err(Bad::Format),
        _ => Ok(value),
    }
}

/// Splits a Kafka LIST value: comma separated, items trimmed, empty items dropped.
pub(crate) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_and_type_codes() {
        let sources = [
            ConfigSource::Unknown,
            ConfigSource::DynamicTopicConfig,
            ConfigSource::DynamicBrokerConfig,
            ConfigSource::DynamicDefaultBrokerConfig,
            ConfigSource::StaticBrokerConfig,
            ConfigSource::DefaultConfig,
            ConfigSource::DynamicBrokerLoggerConfig,
            ConfigSource::ClientMetricsConfig,
            ConfigSource::GroupConfig,
        ];
        for (i, s) in sources.iter().enumerate() {
            assert_eq!(s.code(), i as i8);
        }
        let types = [
            ConfigType::Unknown,
            ConfigType::Boolean,
            ConfigType::String,
            ConfigType::Int,
            ConfigType::Short,
            ConfigType::Long,
            ConfigType::Double,
            ConfigType::List,
            ConfigType::Class,
            ConfigType::Password,
        ];
        for (i, t) in types.iter().enumerate() {
            assert_eq!(t.code(), i as i8);
        }
    }

    #[test]
    fn typed_parsing() {
        assert_eq!(
            parse_typed(ConfigType::Boolean, Check::None, " TRUE "),
            Ok(Value::Bool(true))
        );
        assert_eq!(
            parse_typed(ConfigType::Int, Check::None, "42"),
            Ok(Value::Int(42))
        );
        assert_eq!(
            parse_typed(ConfigType::Int, Check::None, "3000000000"),
            Err(Bad::NotType(ConfigType::Int))
        );
        assert_eq!(
            parse_typed(ConfigType::Short, Check::None, "40000"),
            Err(Bad::NotType(ConfigType::Short))
        );
        assert_eq!(
            parse_typed(ConfigType::Long, Check::AtLeast(-1), "-2"),
            Err(Bad::AtLeast(-1))
        );
        assert_eq!(
            parse_typed(ConfigType::Double, Check::DoubleBetween(0.0, 1.0), "1.5"),
            Err(Bad::DoubleBetween(0.0, 1.0))
        );
        assert_eq!(
            parse_typed(ConfigType::Double, Check::None, "NaN"),
            Err(Bad::NotType(ConfigType::Double))
        );
        assert_eq!(
            parse_typed(ConfigType::List, Check::None, " a, ,b "),
            Ok(Value::List(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            parse_typed(ConfigType::List, Check::ListOf(&["a"], false), ""),
            Err(Bad::Empty)
        );
        assert_eq!(
            parse_typed(ConfigType::String, Check::OneOf(&["x", "y"]), "z"),
            Err(Bad::OneOf(&["x", "y"]))
        );
    }

    #[test]
    fn messages() {
        assert_eq!(
            Bad::NotType(ConfigType::Long).kafka_reason(),
            "Not a number of type LONG"
        );
        assert_eq!(
            Bad::AtLeast(1).broker_message("0"),
            "must be at least 1, got 0"
        );
        assert_eq!(
            Bad::NotType(ConfigType::Int).broker_message("abc"),
            "\"abc\" is not an integer"
        );
        assert_eq!(
            Bad::NotType(ConfigType::Int).broker_message("3000000000"),
            "3000000000 is out of range for a 32-bit integer"
        );
    }
}
