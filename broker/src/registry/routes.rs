//! The route table of the registry's REST API: Confluent's paths, matched on
//! percent-decoded path segments. Pure; the handlers are in [`super::api`].

/// One REST resource (the method is matched by the handler).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    Root,
    /// `/subjects`
    Subjects,
    /// `/subjects/{s}` (lookup, delete)
    Subject(String),
    /// `/subjects/{s}/versions`
    Versions(String),
    /// `/subjects/{s}/versions/{v}`
    Version(String, String),
    /// `/subjects/{s}/versions/{v}/schema`
    VersionSchema(String, String),
    /// `/subjects/{s}/versions/{v}/referencedby`
    ReferencedBy(String, String),
    /// `/schemas`
    Schemas,
    /// `/schemas/ids/{id}` and its `/schema`, `/subjects`, `/versions`
    SchemaById(String),
    SchemaByIdText(String),
    SchemaByIdSubjects(String),
    SchemaByIdVersions(String),
    /// `/schemas/types`
    SchemaTypes,
    /// `/compatibility/subjects/{s}/versions[/{v}]`
    Compatibility(String, Option<String>),
    /// `/config[/{s}]`
    Config(Option<String>),
    /// `/mode[/{s}]`
    Mode(Option<String>),
}

/// Decodes `%XX` escapes (a malformed escape stays as it is; invalid UTF-8 is replaced).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The resource `path` names, or None (404).
pub fn route(path: &str) -> Option<Route> {
    let trimmed = path.trim_end_matches('/');
    let raw: Vec<&str> = trimmed.split('/').skip(1).collect();
    if trimmed.is_empty() {
        return Some(Route::Root);
    }
    let seg: Vec<String> = raw.iter().map(|s| percent_decode(s)).collect();
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    let own = |x: &str| x.to_string();
    Some(match s.as_slice() {
        ["subjects"] => Route::Subjects,
        ["subjects", subj] => Route::Subject(own(subj)),
        ["subjects", subj, "versions"] => Route::Versions(own(subj)),
        ["subjects", subj, "versions", v] => Route::Version(own(subj), own(v)),
        ["subjects", subj, "versions", v, "schema"] => Route::VersionSchema(own(subj), own(v)),
        ["subjects", subj, "versions", v, "referencedby"] => Route::ReferencedBy(own(subj), own(v)),
        ["schemas"] => Route::Schemas,
        ["schemas", "types"] => Route::SchemaTypes,
        ["schemas", "ids", id] => Route::SchemaById(own(id)),
        ["schemas", "ids", id, "schema"] => Route::SchemaByIdText(own(id)),
        ["schemas", "ids", id, "subjects"] => Route::SchemaByIdSubjects(own(id)),
        ["schemas", "ids", id, "versions"] => Route::SchemaByIdVersions(own(id)),
        ["compatibility", "subjects", subj, "versions"] => Route::Compatibility(own(subj), None),
        ["compatibility", "subjects", subj, "versions", v] => Route::Compatibility(own(subj), Some(own(v))),
        ["config"] => Route::Config(None),
        ["config", subj] => Route::Config(Some(own(subj))),
        ["mode"] => Route::Mode(None),
        ["mode", subj] => Route::Mode(Some(own(subj))),
        _ => return None,
    })
}

/// Whether `subject` may be used: not empty, no control characters, no path separators
/// (a decoded `%2F` would name a different resource in every client's URL building).
pub fn valid_subject(subject: &str) -> bool {
    !subject.is_empty() && subject.len() <= 4096 && !subject.chars().any(|c| c.is_control() || c == '/' || c == '\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_routes() {
        let cases = [
            ("/", Route::Root),
            ("/subjects", Route::Subjects),
            ("/subjects/", Route::Subjects),
            ("/subjects/orders-value", Route::Subject("orders-value".into())),
            ("/subjects/orders-value/versions", Route::Versions("orders-value".into())),
            ("/subjects/orders-value/versions/latest", Route::Version("orders-value".into(), "latest".into())),
            ("/subjects/o/versions/2/schema", Route::VersionSchema("o".into(), "2".into())),
            ("/subjects/o/versions/2/referencedby", Route::ReferencedBy("o".into(), "2".into())),
            ("/schemas", Route::Schemas),
            ("/schemas/types", Route::SchemaTypes),
            ("/schemas/ids/7", Route::SchemaById("7".into())),
            ("/schemas/ids/7/schema", Route::SchemaByIdText("7".into())),
            ("/schemas/ids/7/subjects", Route::SchemaByIdSubjects("7".into())),
            ("/schemas/ids/7/versions", Route::SchemaByIdVersions("7".into())),
            ("/compatibility/subjects/o/versions", Route::Compatibility("o".into(), None)),
            ("/compatibility/subjects/o/versions/latest", Route::Compatibility("o".into(), Some("latest".into()))),
            ("/config", Route::Config(None)),
            ("/config/o", Route::Config(Some("o".into()))),
            ("/mode", Route::Mode(None)),
            ("/mode/o", Route::Mode(Some("o".into()))),
            ("/subjects/a%3Ab%2Fc", Route::Subject("a:b/c".into())),
        ];
        for (path, want) in cases {
            assert_eq!(route(path), Some(want), "{path}");
        }
        for bad in ["/nope", "/subjects/a/b", "/schemas/ids", "/config/a/b", "/subjects/a/versions/1/x"] {
            assert_eq!(route(bad), None, "{bad}");
        }
    }

    #[test]
    fn percent_decoding_is_total() {
        assert_eq!(percent_decode("a%20b"), "a b");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn subject_names() {
        assert!(valid_subject("orders-value") && valid_subject(":.ctx:orders"));
        assert!(!valid_subject("") && !valid_subject("a/b") && !valid_subject("a\nb") && !valid_subject("..\\x"));
    }
}
