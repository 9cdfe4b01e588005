//! How install-cni marks the conflist it writes, so that `node doctor` can
//! tell Tabby's own file from one that only carries its name (copied from
//! another node, written by hand or by another installer) or that was
//! edited after install-cni wrote it: the next install-cni run silently
//! replaces such a file, and a copied one names the wrong node.
//!
//! The mark is a top-level `tabbyInstallCni` object — runtimes ignore
//! unknown top-level keys of a conflist, and plugins never see them —
//! holding the SHA-256 of the rest of the list in serde_json's compact
//! form, so whitespace and key order do not count as edits.

use serde_json::Value;

pub const MARK_KEY: &str = "tabbyInstallCni";
const WRITTEN_BY: &str = "tabby install-cni";

/// What the mark of a conflist says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Written by install-cni and unchanged since.
    Intact,
    /// No mark: install-cni did not write it.
    Missing,
    /// Marked, but the content no longer matches the mark.
    Edited,
}

fn digest(list: &Value) -> String {
    let mut v = list.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove(MARK_KEY);
    }
    let d = ring::digest::digest(&ring::digest::SHA256, v.to_string().as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// `text` (a rendered conflist, a JSON object) with the mark inserted as
/// its first key. The rest of the text is kept as the template wrote it.
pub fn mark(text: &str) -> Result<String, serde_json::Error> {
    let list: Value = serde_json::from_str(text)?;
    let mark = serde_json::json!({"writtenBy": WRITTEN_BY, "sha256": digest(&list)});
    let Some(brace) = text.find('{').filter(|_| list.is_object()) else {
        // Not an object: the conflist validator refuses it before this.
        return Ok(text.to_string());
    };
    let (head, rest) = text.split_at(brace + 1);
    let marked = format!("{head}\n  \"{MARK_KEY}\": {mark},{rest}");
    // The insertion must leave valid JSON (an empty object would not).
    serde_json::from_str::<Value>(&marked)?;
    Ok(marked)
}

/// Reads the mark of a parsed conflist.
pub fn read(list: &Value) -> Mark {
    match list
        .get(MARK_KEY)
        .and_then(|m| m.get("sha256"))
        .and_then(Value::as_str)
    {
        None => Mark::Missing,
        Some(d) if d == digest(list) => Mark::Intact,
        Some(_) => Mark::Edited,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = r#"{
  "name": "k8s-pod-network",
  "cniVersion": "1.0.0",
  "plugins": [{"type": "tabby", "mtu": 0, "ipam": {"type": "tabby-ipam"}}]
}
"#;

    #[test]
    fn a_marked_list_reads_intact_until_its_content_changes() {
        let marked = mark(LIST).unwrap();
        // The template's own layout is kept after the mark.
        assert!(marked.ends_with(&LIST[1..]), "{marked}");
        let v: Value = serde_json::from_str(&marked).unwrap();
        assert_eq!(read(&v), Mark::Intact);
        // Reformatting is not an edit…
        let pretty: Value =
            serde_json::from_str(&serde_json::to_string_pretty(&v).unwrap()).unwrap();
        assert_eq!(read(&pretty), Mark::Intact);
        // …a changed value is.
        let edited: Value =
            serde_json::from_str(&marked.replace("\"mtu\": 0", "\"mtu\": 1400")).unwrap();
        assert_eq!(read(&edited), Mark::Edited);
        assert_eq!(read(&serde_json::from_str(LIST).unwrap()), Mark::Missing);
    }

    #[test]
    fn a_non_object_is_left_alone() {
        assert_eq!(mark("[1]").unwrap(), "[1]");
        assert!(mark("{").is_err());
    }
}
