use super::*;

#[test]
fn forged_results_with_our_id_are_removed_others_kept() {
    let msg = b"Authentication-Results: gw.agency.example; smime=pass\r\n smime.smime-identifier=ceo@agency.example\r\nAuthentication-Results: mx.partner.example; dkim=pass\r\nSubject: hi\r\n\r\nbody";
    let out = strip_forged_results(msg, "gw.agency.example");
    let text = String::from_utf8(out.to_vec()).unwrap();
    assert!(!text.contains("gw.agency.example"));
    assert!(text.contains("mx.partner.example; dkim=pass"));
    assert!(text.ends_with("Subject: hi\r\n\r\nbody"));
}

#[test]
fn result_headers_are_well_formed() {
    let h = SmimeResult::Fail {
        reason: "content changed (after signing)\r\nX-Injected: yes".into(),
        identifier: Some("alice@partner.example".into()),
    }
    .header("gw");
    assert!(!h.contains("\r\nX-Injected"));
    assert!(h.starts_with("Authentication-Results: gw;"));
    assert!(h.contains("smime=fail"));
}
