//! How the CLI shows operation results to people (and, with `--json`, to
//! scripts). One shape per result, whichever implementation produced it.

use replay::ops::{
    DeadLetterView, Inspection, ProjectionVerification, RebuildKind, RebuildReport,
    SnapshotVerification,
};

pub fn inspection(inspection: &Inspection, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&inspection.json)?);
    } else {
        print!("{}", inspection.text);
    }
    Ok(())
}

/// One projection's verification.
pub fn verification(v: &ProjectionVerification) {
    let (name, version) = (&v.name, v.version);
    if v.is_clean() {
        println!(
            "{name} v{version}: {} entries match a rebuild from {} events",
            v.entries, v.events
        );
        return;
    }
    println!(
        "{name} v{version}: {} of {} entries differ from a rebuild from {} events",
        v.different, v.entries, v.events
    );
    for d in &v.differences {
        println!("  DIFFERENT {}", d.entry);
        println!(
            "    served:  {}",
            d.served.as_deref().unwrap_or("(missing)")
        );
        println!(
            "    rebuilt: {}",
            d.rebuilt.as_deref().unwrap_or("(missing)")
        );
    }
    let shown = v.differences.len() as u64;
    if v.different > shown {
        println!("  ... and {} more", v.different - shown);
    }
}

pub fn snapshot_verification(v: &SnapshotVerification, topics: &commands::Topics) {
    println!(
        "{} orders folded from {}, {} snapshots in {}, {} unreadable event records",
        v.orders, topics.events, v.snapshots, topics.snapshots, v.undecodable
    );
    for difference in &v.differences {
        println!("DIFFERENT {difference}");
    }
    if v.is_clean() {
        println!("snapshots match the events");
    } else {
        println!("{} difference(s)", v.differences.len());
    }
}

/// `dlq list`: one line per dead letter.
pub fn dead_letter_line(letter: &DeadLetterView) {
    println!(
        "{}  {}  {}  {}  {}  {}",
        letter.projection,
        letter.position(),
        letter.order_id.as_deref().unwrap_or("-"),
        letter.event_type.as_deref().unwrap_or("-"),
        domain::envelope::format_time(&letter.received_at),
        letter.error
    );
}

/// `dlq show`: one dead letter in full, as JSON.
pub fn dead_letter(letter: &DeadLetterView) -> anyhow::Result<()> {
    let headers: serde_json::Map<String, serde_json::Value> = letter
        .headers
        .iter()
        .map(|h| (h.key.clone(), serde_json::Value::String(h.value.clone())))
        .collect();
    let shown = serde_json::json!({
        "projection": letter.projection, "partition": letter.partition, "offset": letter.offset,
        "orderId": letter.order_id, "eventType": letter.event_type, "error": letter.error,
        "receivedAt": domain::envelope::format_time(&letter.received_at), "headers": headers,
        "payloadBytes": letter.payload_bytes, "payloadHex": letter.payload_hex,
    });
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

/// How one rebuild or switch ended.
pub fn rebuild_report(kind: RebuildKind, r: &RebuildReport) -> String {
    let name = &r.name;
    let target = r.target_version;
    let verb = match kind {
        RebuildKind::Rebuild { .. } => "rebuild",
        RebuildKind::SwitchTo(_) => "switch",
    };
    if let Some(error) = &r.error {
        return format!("{name}: {verb} to v{target} failed: {error}");
    }
    if let RebuildKind::SwitchTo(_) = kind {
        return match (&r.left_in, r.at_next_start) {
            (Some(dir), true) => format!(
                "{name}: now served: v{target} (from the next start of serve, which catches it up with the log); the generation left is kept in {}",
                dir.display()
            ),
            _ => format!("{name}: now served: v{target} (caught up with the log)"),
        };
    }
    let built = format!(
        "{name}: generation v{target} built from {} events in {:.1} s ({:.0} events/s)",
        r.events,
        r.seconds,
        r.events_per_second()
    );
    let mut text = match r.frozen_at {
        Some(at) => format!(
            "{built}; frozen at {at}; the served generation is still v{}",
            r.served_version
        ),
        None => format!("{built}; now served: v{}", r.served_version),
    };
    if let Some(dir) = &r.left_in {
        let what = if r.frozen_at.is_some() {
            "the frozen generation is"
        } else {
            "the previous generation is kept for rollback"
        };
        text.push_str(&format!("\n  {what} in {}", dir.display()));
    }
    text
}

/// A text someone else wrote (a receiver's error page, say) on one line of
/// at most `max` characters: whitespace runs become one space, and a cut
/// ends with an ellipsis.
pub fn one_line(text: &str, max: usize) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= max {
        return joined;
    }
    let mut cut: String = joined.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn a_multi_line_error_page_fits_one_line() {
        let page = "503 Service Unavailable: <html>\n  <body>\n\t<h1>down</h1>\n</body></html>";
        assert_eq!(
            one_line(page, 200),
            "503 Service Unavailable: <html> <body> <h1>down</h1> </body></html>"
        );
        let long = "é".repeat(300);
        let cut = one_line(&long, 10);
        assert_eq!(cut.chars().count(), 10);
        assert!(cut.ends_with('…'));
        assert_eq!(one_line("  short  ", 10), "short");
    }
}
