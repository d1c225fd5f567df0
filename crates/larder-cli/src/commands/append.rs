//! `larder append --log L [--kind K] (--data JSON | --stdin)`: one batch.
//!
//! JSON input is taken exactly or refused: an integer must fit in 64 bits
//! (-2^63 … 2^64-1; serde_json would turn a bigger one into a lossy
//! float), and an object may not repeat a key (serde_json would keep the
//! last silently; docs/format.md forbids duplicate map keys).

use std::io::BufRead;
use std::process::ExitCode;

use larder::codec::Payload;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, json};

use super::{CmdResult, Ctx, check_log_name};
use crate::output::CliError;

/// Runs `append`: `data`, or one JSON value per line of stdin, as one batch.
pub fn run(ctx: &Ctx, log: &str, kind: &str, data: Option<&str>, stdin: bool) -> CmdResult {
    let larder = ctx.open()?;
    check_log_name(&larder, log)?;
    let mut payloads = Vec::new();
    if stdin {
        for (i, line) in std::io::stdin().lock().lines().enumerate() {
            let line =
                line.map_err(|e| CliError::usage(format!("cannot read standard input: {e}")))?;
            if !line.trim().is_empty() {
                payloads.push(parse(&line, Some(i + 1))?);
            }
        }
    } else if let Some(d) = data {
        payloads.push(parse(d, None)?);
    }
    let batch: Vec<(&str, Payload)> = payloads.into_iter().map(|p| (kind, p)).collect();
    let commit = larder.log(log)?.append_batch(&batch)?;
    ctx.out.emit(
        json!({ "commit": commit.to_string(), "count": batch.len() }),
        || format!("appended {} event(s) to {log}: {commit}", batch.len()),
    );
    Ok(ExitCode::SUCCESS)
}

/// Parses one event's JSON strictly (see the module docs) into a payload.
fn parse(text: &str, line: Option<usize>) -> Result<Payload, CliError> {
    let value = strict_json(text).map_err(|e| {
        let at = line.map(|l| format!("line {l}: ")).unwrap_or_default();
        CliError::usage(format!("{at}invalid JSON: {e}"))
    })?;
    Ok(Payload::from_serde(&value)?)
}

/// `text` as a JSON value, refusing integers beyond 64 bits and repeated
/// object keys.
pub fn strict_json(text: &str) -> Result<Value, String> {
    check_integers(text)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Strict.deserialize(&mut de).map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// Finds every number written as an integer (no `.`, `e` or `E`) outside
/// strings and refuses those that fit neither i64 nor u64. Malformed text
/// is left to the parser.
fn check_integers(text: &str) -> Result<(), String> {
    let bytes = text.as_bytes();
    let (mut i, mut in_string, mut escaped) = (0, false, false);
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if b == b'-' || b.is_ascii_digit() {
            let start = i;
            while i < bytes.len()
                && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
            {
                i += 1;
            }
            let token = &text[start..i];
            let integer = !token.contains(['.', 'e', 'E']);
            if integer
                && token.len() > 1
                && token.parse::<i64>().is_err()
                && token.parse::<u64>().is_err()
                && token.bytes().skip(1).all(|c| c.is_ascii_digit())
            {
                return Err(format!(
                    "integer {token} does not fit in 64 bits (larder keeps integers exactly, \
                     from -9223372036854775808 to 18446744073709551615); write it as a string, \
                     or as a float such as {token}.0 if rounding is fine"
                ));
            }
            continue;
        }
        i += 1;
    }
    Ok(())
}

/// Builds a [`Value`] like serde_json does, but refuses a repeated key.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("number {v} is not finite")))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Strict)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "key {key:?} appears twice in one object (larder refuses duplicate keys)"
                )));
            }
            let value = map.next_value_seed(Strict)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_exact_or_refused() {
        assert_eq!(
            strict_json("18446744073709551615").unwrap(),
            json!(u64::MAX)
        );
        assert_eq!(
            strict_json("-9223372036854775808").unwrap(),
            json!(i64::MIN)
        );
        assert!(
            strict_json("18446744073709551616")
                .unwrap_err()
                .contains("64 bits")
        );
        assert!(
            strict_json("[1, -9223372036854775809]")
                .unwrap_err()
                .contains("64 bits")
        );
        assert!(strict_json(r#"{"a": 1e400}"#).is_err());
        assert_eq!(strict_json("1.5e3").unwrap(), json!(1500.0));
        // Digits inside strings are not numbers.
        assert_eq!(
            strict_json(r#"["99999999999999999999\"", "-5"]"#).unwrap(),
            json!(["99999999999999999999\"", "-5"])
        );
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        assert!(
            strict_json(r#"{"a":1,"a":2}"#)
                .unwrap_err()
                .contains("\"a\" appears twice")
        );
        assert!(strict_json(r#"[{"x":{"b":1,"b":1}}]"#).is_err());
        assert_eq!(
            strict_json(r#"{"a":{"a":1}}"#).unwrap(),
            json!({"a":{"a":1}})
        );
    }
}
