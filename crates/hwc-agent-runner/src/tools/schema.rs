//! Tool arguments checked against the tool's own schema before anything
//! else looks at them. The subset the tools use: an object with typed
//! properties (`string`, `integer`, `boolean`, `array` of strings or of
//! objects), `enum`, `minimum`/`maximum`, `maxLength`, `required`, and no
//! properties beyond those declared. A violation goes back to the model as
//! a sentence naming the argument.

use serde_json::Value;

/// `Ok` when `args` fits `schema`; the first problem otherwise.
pub fn check(schema: &Value, args: &Value) -> Result<(), String> {
    check_at(schema, args, "arguments")
}

fn check_at(schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let ty = schema["type"].as_str().unwrap_or("");
    match ty {
        "object" => {
            let Some(map) = v.as_object() else {
                return Err(format!("{at} must be a JSON object"));
            };
            let props = schema["properties"].as_object();
            // Strict by default (a typo'd argument is an error the model
            // can fix); `additionalProperties: true` opens an object whose
            // keys are someone else's (an MCP tool's arguments).
            let open = schema["additionalProperties"] == Value::Bool(true);
            for req in schema["required"].as_array().into_iter().flatten() {
                if let Some(k) = req.as_str() {
                    if !map.contains_key(k) {
                        return Err(format!("{at} lacks the required `{k}`"));
                    }
                }
            }
            for (k, x) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => check_at(s, x, &format!("`{k}`"))?,
                    None if open => {}
                    None => {
                        let known: Vec<&str> = props
                            .map(|p| p.keys().map(String::as_str).collect())
                            .unwrap_or_default();
                        return Err(format!(
                            "{at} has `{k}`, which this tool does not take (it takes: {})",
                            known.join(", ")
                        ));
                    }
                }
            }
            Ok(())
        }
        "string" => {
            let Some(s) = v.as_str() else {
                return Err(format!("{at} must be a string"));
            };
            if let Some(max) = schema["maxLength"].as_u64() {
                if s.chars().count() as u64 > max {
                    return Err(format!("{at} is longer than {max} characters"));
                }
            }
            if let Some(choices) = schema["enum"].as_array() {
                if !choices.iter().any(|c| c == v) {
                    let list: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
                    return Err(format!("{at} must be one of {}", list.join(", ")));
                }
            }
            Ok(())
        }
        "integer" => {
            let Some(n) = v.as_i64() else {
                return Err(format!("{at} must be an integer"));
            };
            if schema["minimum"].as_i64().is_some_and(|m| n < m)
                || schema["maximum"].as_i64().is_some_and(|m| n > m)
            {
                return Err(format!(
                    "{at} must be between {} and {}",
                    schema["minimum"], schema["maximum"]
                ));
            }
            Ok(())
        }
        "boolean" => v
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| format!("{at} must be true or false")),
        "array" => {
            let Some(items) = v.as_array() else {
                return Err(format!("{at} must be an array"));
            };
            if let Some(max) = schema["maxItems"].as_u64() {
                if items.len() as u64 > max {
                    return Err(format!("{at} has more than {max} items"));
                }
            }
            for (i, x) in items.iter().enumerate() {
                check_at(&schema["items"], x, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn violations_name_the_argument() {
        let s = json!({"type": "object", "required": ["unit"], "properties": {
            "unit": {"type": "string", "maxLength": 10},
            "lines": {"type": "integer", "minimum": 1, "maximum": 500},
            "mode": {"type": "string", "enum": ["a", "b"]},
            "args": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
            "open": {"type": "object", "additionalProperties": true}}});
        let table = [
            (json!({"unit": "x"}), None),
            (json!([]), Some("arguments must be a JSON object")),
            (json!({}), Some("lacks the required `unit`")),
            (json!({"unit": 3}), Some("`unit` must be a string")),
            (
                json!({"unit": "x", "lines": 0}),
                Some("`lines` must be between 1 and 500"),
            ),
            (
                json!({"unit": "x", "mode": "c"}),
                Some("`mode` must be one of \"a\", \"b\""),
            ),
            (
                json!({"unit": "x", "rm": true}),
                Some("has `rm`, which this tool does not take"),
            ),
            (
                json!({"unit": "x", "args": ["a", 1]}),
                Some("`args`[1] must be a string"),
            ),
            (json!({"unit": "0123456789x"}), Some("longer than 10")),
            (
                json!({"unit": "x", "open": {"anything": [1], "goes": null}}),
                None,
            ),
            (
                json!({"unit": "x", "open": 1}),
                Some("`open` must be a JSON object"),
            ),
        ];
        for (args, want) in table {
            match (check(&s, &args), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.contains(w), "{args}: {e}"),
                (got, want) => panic!("{args}: got {got:?}, want {want:?}"),
            }
        }
    }
}
