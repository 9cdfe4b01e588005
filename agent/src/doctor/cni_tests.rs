use super::*;
use crate::doctor::Severity;

fn dirs() -> Dirs {
    Dirs {
        net: "/h/etc/cni/net.d".into(),
        bin: "/h/opt/cni/bin".into(),
        conf_name: DEFAULT_CONF_NAME.into(),
        tabby: Some("/usr/bin/tabby".into()),
    }
}

fn tabby_list(node: &str) -> String {
    let text = format!(
        r#"{{"name":"k8s-pod-network","cniVersion":"1.0.0","plugins":[
        {{"type":"tabby","nodename":"{node}","mtu":0,"ipam":{{"type":"tabby-ipam"}}}}]}}"#
    );
    marker::mark(&text).unwrap()
}

const FLANNEL: &str = r#"{"name":"cbr0","cniVersion":"0.3.1","plugins":[
    {"type":"flannel","delegate":{"hairpinMode":true,"isDefaultGateway":true}},
    {"type":"portmap","capabilities":{"portMappings":true}}]}"#;

fn all_installed(_: &str) -> bool {
    true
}

#[test]
fn tabbys_marked_conflist_alone_with_its_plugins_is_clean() {
    let files = vec![ConfFile::parse("10-tabby.conflist", &tabby_list("node-1"))];
    assert!(assess(&dirs(), Ok(files), "node-1", all_installed).is_empty());
}

#[test]
fn a_leftover_flannel_conflist_that_sorts_first_wins_and_is_named_with_its_move() {
    let files = vec![
        ConfFile::parse("05-flannel.conflist", FLANNEL),
        ConfFile::parse("10-tabby.conflist", &tabby_list("node-1")),
    ];
    let f = assess(&dirs(), Ok(files), "node-1", all_installed);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].severity, Severity::Error);
    assert!(
        f[0].what
            .contains("05-flannel.conflist (plugins: flannel, portmap)"),
        "{}",
        f[0].what
    );
    assert!(
        f[0].what.contains("not Tabby's 10-tabby.conflist"),
        "{}",
        f[0].what
    );
    assert_eq!(
        f[0].evidence,
        "ls /h/etc/cni/net.d: 05-flannel.conflist 10-tabby.conflist"
    );
    assert_eq!(
        f[0].fix,
        "mv /h/etc/cni/net.d/05-flannel.conflist /h/etc/cni/net.d/05-flannel.conflist.disabled"
    );
    // A later file, after Tabby's, changes nothing.
    let files = vec![
        ConfFile::parse("10-tabby.conflist", &tabby_list("node-1")),
        ConfFile::parse("99-loopback.conf", r#"{"type":"loopback","name":"lo"}"#),
    ];
    assert!(assess(&dirs(), Ok(files), "node-1", all_installed).is_empty());
}

#[test]
fn a_broken_first_file_stops_containerd() {
    let files = vec![
        ConfFile::parse("00-broken.conf", "{\"name\": "),
        ConfFile::parse("10-tabby.conflist", &tabby_list("node-1")),
    ];
    let f = assess(&dirs(), Ok(files), "node-1", all_installed);
    assert_eq!(f.len(), 1);
    assert!(
        f[0].what.contains("containerd stops at it"),
        "{}",
        f[0].what
    );
    assert!(f[0].what.contains("not valid JSON"), "{}", f[0].what);
}

#[test]
fn no_config_or_no_tabby_config_is_an_error_fixed_by_install_cni() {
    let f = assess(&dirs(), Ok(vec![]), "node-1", all_installed);
    assert_eq!(f.len(), 1);
    assert!(f[0]
        .what
        .starts_with("no CNI network config in /h/etc/cni/net.d"));
    assert_eq!(f[0].fix, "/usr/bin/tabby install-cni --host-root /h");
    let f = assess(
        &dirs(),
        Err("/x: No such file".into()),
        "node-1",
        all_installed,
    );
    assert_eq!(f[0].evidence, "/x: No such file");
    let files = vec![ConfFile::parse("10-flannel.conflist", FLANNEL)];
    let f = assess(&dirs(), Ok(files), "node-1", all_installed);
    assert!(f[0].what.starts_with("no Tabby conflist"), "{}", f[0].what);
    // Without a root shared by the two dirs, the fix says what to do.
    let mut d = dirs();
    d.bin = "/usr/lib/cni".into();
    assert!(d.install_fix().starts_with("re-run tabby install-cni"));
    d.net = "/etc/cni/net.d".into();
    d.bin = "/opt/cni/bin".into();
    assert_eq!(d.install_fix(), "/usr/bin/tabby install-cni --host-root /");
}

#[test]
fn missing_plugin_binaries_are_named_with_the_copy_command() {
    let files = vec![ConfFile::parse("10-tabby.conflist", &tabby_list("node-1"))];
    let f = assess(&dirs(), Ok(files.clone()), "node-1", |p| p != "tabby");
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(
        f[0].what,
        "the tabby CNI plugin is missing from /h/opt/cni/bin: every pod ADD on this node fails"
    );
    assert_eq!(
        f[0].fix,
        "install -m 0755 /usr/bin/tabby /h/opt/cni/bin/tabby"
    );
    let f = assess(&dirs(), Ok(files), "node-1", |_| false);
    assert_eq!(f.len(), 2);
    assert!(f[1]
        .fix
        .ends_with("&& ln -f /h/opt/cni/bin/tabby /h/opt/cni/bin/tabby-ipam"));
    // A chained plugin of Tabby's list must be there too.
    let text = tabby_list("node-1").replace(
        "\"ipam\":{\"type\":\"tabby-ipam\"}}",
        "\"ipam\":{\"type\":\"tabby-ipam\"}},{\"type\":\"portmap\"}",
    );
    let files = vec![ConfFile::parse("10-tabby.conflist", &text)];
    let f = assess(&dirs(), Ok(files), "node-1", |p| p != "portmap");
    assert!(
        f.iter().any(|f| f
            .what
            .contains("the portmap plugin that 10-tabby.conflist names")),
        "{f:#?}"
    );
}

#[test]
fn a_conflist_install_cni_did_not_write_or_for_another_node_is_named() {
    let unmarked = tabby_list("node-1").replacen("\"tabbyInstallCni\"", "\"other\"", 1);
    let f = assess(
        &dirs(),
        Ok(vec![ConfFile::parse("10-tabby.conflist", &unmarked)]),
        "node-1",
        all_installed,
    );
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].severity, Severity::Warning);
    assert!(f[0].what.contains("tabby install-cni did not write it"));
    let edited = tabby_list("node-1").replace("\"mtu\":0", "\"mtu\":1400");
    let f = assess(
        &dirs(),
        Ok(vec![ConfFile::parse("10-tabby.conflist", &edited)]),
        "node-1",
        all_installed,
    );
    assert!(f[0].what.contains("was edited after"), "{f:#?}");
    let f = assess(
        &dirs(),
        Ok(vec![ConfFile::parse(
            "10-tabby.conflist",
            &tabby_list("node-7"),
        )]),
        "node-1",
        all_installed,
    );
    assert_eq!(f.len(), 1);
    assert!(f[0]
        .what
        .contains("is for node node-7, not this node node-1"));
}

#[test]
fn the_net_dir_is_read_in_the_runtimes_order_and_by_its_extensions() {
    let d = tempfile::tempdir().unwrap();
    for (n, t) in [
        ("10-tabby.conflist", tabby_list("n")),
        ("05-flannel.conflist", FLANNEL.to_string()),
        ("tabby-kubeconfig", "x".into()),
        (".10-tabby.conflist.tabby-tmp.7", "x".into()),
        ("01-a.json", r#"{"type":"bridge"}"#.into()),
    ] {
        std::fs::write(d.path().join(n), t).unwrap();
    }
    std::fs::create_dir(d.path().join("00.conf")).unwrap();
    let files = read_net_dir(d.path()).unwrap();
    let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["01-a.json", "05-flannel.conflist", "10-tabby.conflist"]
    );
    assert_eq!(files[0].plugins(), ["bridge"]);
    assert_eq!(files[2].plugins(), ["tabby", "tabby-ipam"]);
}
