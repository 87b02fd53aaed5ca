//! Queue settings and member lines, as Asterisk's `app_queue` reads them,
//! mapped into [`QueueConfig`] and [`AgentConfig`].
//!
//! Shared by the `queues.conf` importer and the FreePBX database importer
//! (FreePBX stores the same `keyword = data` pairs in `queues_details`).
//!
//! - `strategy`, `timeout` (the ring timeout, Asterisk's default 15 s) and
//!   `wrapuptime` map one to one; an unknown strategy is reported and, as
//!   in Asterisk, the queue uses `ringall`.
//! - `member => Technology/resource[,penalty[,name[,state_interface[,ringinuse[,wrapuptime[,paused]]]]]]`:
//!   the agent's extension is taken from `Local/101@context/n`,
//!   `PJSIP/101`, `SIP/101`, `IAX2/101` or `Agent/101`; a phone line
//!   (`DAHDI/1`) or a call through a trunk has no extension and is reported.
//! - Options that only change what a caller hears, recording, logging or
//!   statistics (announcements, music, `retry`, `servicelevel`, …) mean
//!   nothing for a chat and are skipped silently. Options that would change
//!   who gets a chat or whether a visitor may wait (`maxlen`, `joinempty`,
//!   `autopause`, penalty rules, …) are reported unless they hold their
//!   neutral value; unknown options are reported.

use crate::model::{AgentExtension, QueueExtension};
use crate::queue::{AgentConfig, MemberConfig, QueueConfig, Strategy};

use super::Problem;

/// Asterisk's `DEFAULT_TIMEOUT` for ringing a member.
pub(crate) const ASTERISK_RING_TIMEOUT_SECS: u32 = 15;

/// One `keyword = value` of a queue, with where it came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setting<'a> {
    pub key: &'a str,
    pub value: &'a str,
    pub file: &'a str,
    pub line: usize,
}

/// The agents met as queue members so far, in order of first appearance.
#[derive(Debug, Default)]
pub(crate) struct AgentBook {
    agents: Vec<AgentConfig>,
    /// Whether `agents[i].name` came from a member line (not defaulted).
    named: Vec<bool>,
}

impl AgentBook {
    fn add(&mut self, agent: &AgentExtension, name: Option<&str>) {
        match self.agents.iter().position(|a| &a.extension == agent) {
            Some(i) => {
                if let (Some(name), false) = (name, self.named[i]) {
                    self.agents[i].name = name.to_owned();
                    self.named[i] = true;
                }
            }
            None => {
                self.agents.push(AgentConfig {
                    extension: agent.clone(),
                    name: name.unwrap_or(agent.as_str()).to_owned(),
                    xmpp: None,
                    sip: None,
                });
                self.named.push(name.is_some());
            }
        }
    }

    /// The agents, those whose member lines give no name named from
    /// `names` (extension → the phone's caller-ID name) when it has them.
    pub fn into_agents_named(
        self,
        names: &std::collections::BTreeMap<String, String>,
    ) -> Vec<AgentConfig> {
        let mut agents = self.agents;
        for (agent, named) in agents.iter_mut().zip(self.named) {
            if !named {
                if let Some(name) = names.get(agent.extension.as_str()) {
                    agent.name = name.clone();
                }
            }
        }
        agents
    }
}

/// A parsed `member =>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub agent: AgentExtension,
    pub penalty: u32,
    pub name: Option<String>,
    /// Notes on fields that were read but cannot be mapped.
    pub notes: Vec<String>,
}

/// Splits application-style arguments the way `ast_app_separate_args`
/// does: on `,`, outside double quotes (which are removed), with `\`
/// escaping the next character.
pub(crate) fn split_args(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut parens = 0usize;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        let cur = out.last_mut().expect("never empty");
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    cur.push(next);
                }
            }
            '"' => quoted = !quoted,
            '(' if !quoted => {
                parens += 1;
                cur.push(c);
            }
            ')' if !quoted => {
                parens = parens.saturating_sub(1);
                cur.push(c);
            }
            ',' if !quoted && parens == 0 => out.push(String::new()),
            _ => cur.push(c),
        }
    }
    out
}

/// The agent extension a member interface rings.
pub(crate) fn agent_of_interface(interface: &str) -> Result<AgentExtension, String> {
    let Some((tech, resource)) = interface.split_once('/') else {
        return Err(format!(
            "member `{interface}` is not Technology/resource (such as PJSIP/101)"
        ));
    };
    let extension = match tech.to_ascii_lowercase().as_str() {
        "local" => {
            // Local/101@from-queue/n: the extension, without context and options.
            let target = resource.split('/').next().unwrap_or_default();
            let (exten, context) = target.split_once('@').unwrap_or((target, ""));
            if let Some(number) = external_number(exten, context) {
                return Err(format!(
                    "member `{interface}` forwards to the phone number {number}; a phone cannot \
                     take a chat, so it is left out"
                ));
            }
            exten
        }
        "sip" | "pjsip" | "iax2" | "agent" => {
            if let Some((peer, number)) = resource.split_once('/') {
                return Err(format!(
                    "member `{interface}` dials {number} through {peer}, not an extension of this PBX"
                ));
            }
            resource
        }
        "dahdi" | "zap" | "misdn" | "dongle" => {
            return Err(format!(
                "member `{interface}` is a phone line, not an extension that can chat"
            ))
        }
        _ => {
            return Err(format!(
                "member `{interface}`: unknown channel technology `{tech}`"
            ))
        }
    };
    extension
        .parse::<AgentExtension>()
        .map_err(|e| format!("member `{interface}`: {e}"))
}

/// The phone number a `Local/<number>@<context>` member dials, when it is
/// one: FreePBX marks a follow-me or external number with `#`
/// (`Local/0612345678#@from-queue/n`); a plain Asterisk member dials it
/// through an outbound context. Seven digits or more is a phone number,
/// not an extension.
fn external_number<'a>(exten: &'a str, context: &str) -> Option<&'a str> {
    if let Some(number) = exten.strip_suffix('#') {
        return Some(number);
    }
    let context = context.to_ascii_lowercase();
    let outbound = ["outbound", "outrt", "trunk", "pstn", "dialout"]
        .iter()
        .any(|w| context.contains(w));
    let digits = exten.trim_start_matches('+');
    let long = digits.len() >= 7 && digits.bytes().all(|b| b.is_ascii_digit());
    (outbound || long).then_some(exten)
}

/// The name in a `callerid` value: `"Alice Martin" <201>` → `Alice
/// Martin`; `None` when it holds only a number.
pub(crate) fn callerid_name(value: &str) -> Option<String> {
    let name = match value.find('<') {
        Some(i) => &value[..i],
        None if value
            .trim()
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'+') =>
        {
            ""
        }
        None => value,
    };
    let name = name.trim().trim_matches('"').trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// Parses the value of a `member =>` line.
pub(crate) fn parse_member(value: &str) -> Result<Member, String> {
    let args = split_args(value);
    let field = |i: usize| args.get(i).map(|s| s.trim()).unwrap_or("");
    let interface = field(0);
    if interface.is_empty() {
        return Err("empty member line".to_owned());
    }
    let agent = agent_of_interface(interface)?;
    let penalty = match field(1) {
        "" => 0,
        p => p.parse::<u32>().map_err(|_| {
            format!(
                "member `{interface}`: penalty `{p}` is not a whole number of 0 or more \
                 (Asterisk would silently read it as {})",
                atoi(p).max(0)
            )
        })?,
    };
    let name = Some(field(2)).filter(|n| !n.is_empty()).map(str::to_owned);
    let mut notes = Vec::new();
    if interface
        .get(..4)
        .is_some_and(|t| t.eq_ignore_ascii_case("sip/"))
    {
        notes.push(format!(
            "member `{interface}` is a chan_sip phone (removed from Asterisk 21); imported as \
             agent {agent}, who chats at the address you give"
        ));
    }
    if !field(3).is_empty() {
        notes.push(format!(
            "member `{interface}`: state interface `{}` is not imported; Frontdesk follows the \
             agent's own chat presence, not a phone's state",
            field(3)
        ));
    }
    if !field(4).is_empty() {
        notes.push(format!(
            "member `{interface}`: ringinuse={} is not imported; Frontdesk offers chats by the \
             agent's chat load, not by whether a phone is in use",
            field(4)
        ));
    }
    if !matches!(field(5), "" | "0") {
        notes.push(format!(
            "member `{interface}`: its own wrap-up time {} s is not imported; the queue's applies",
            field(5)
        ));
    }
    if is_yes(field(6)) {
        notes.push(format!(
            "member `{interface}` starts paused on the PBX; Frontdesk offers it chats whenever it is available"
        ));
    }
    Ok(Member {
        agent,
        penalty,
        name,
        notes,
    })
}

/// C's `atoi`: leading blanks, optional sign, leading digits; 0 otherwise.
fn atoi(s: &str) -> i64 {
    let s = s.trim_start();
    let (sign, digits) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    sign * digits[..end].parse::<i64>().unwrap_or(0)
}

/// Asterisk's `ast_true`.
fn is_yes(v: &str) -> bool {
    ["yes", "true", "y", "t", "1", "on"]
        .iter()
        .any(|t| v.eq_ignore_ascii_case(t))
}

/// Asterisk's `ast_false`, or empty.
fn is_no_or_empty(v: &str) -> bool {
    v.is_empty()
        || ["no", "false", "n", "f", "0", "off"]
            .iter()
            .any(|t| v.eq_ignore_ascii_case(t))
}

/// Why an option that makes no difference to who gets a chat or when has
/// no chat equivalent, or `None` if the option matters.
fn no_chat_equivalent(key: &str) -> Option<&'static str> {
    const HEARD: &str = "it sets what a caller hears while waiting";
    const RECORDING: &str = "it records calls";
    const STATS: &str = "it feeds call statistics and manager events";
    const RINGING: &str = "it times how phones ring and are redialled";
    let why = match key {
        k if k.starts_with("announce")
            || k.starts_with("queue-")
            || k.starts_with("periodic-announce")
            || k.ends_with("-periodic-announce") =>
        {
            HEARD
        }
        "musicclass" | "music" | "min-announce-frequency" | "reportholdtime"
        | "skip_joinannounce" => HEARD,
        k if k.starts_with("monitor") || k.starts_with("cron_") => RECORDING,
        "recording" => RECORDING,
        "servicelevel" | "eventwhencalled" | "eventmemberstatus" | "log-restricted-caller-id"
        | "setinterfacevar" | "setqueuevar" | "setqueueentryvar" | "answered_elsewhere" => STATS,
        "retry" | "timeoutpriority" | "timeoutrestart" | "memberdelay" | "autopausedelay" => {
            RINGING
        }
        "ringinuse" => {
            "it rings phones already in a call or not; Frontdesk offers chats by the agent's chat load"
        }
        "context" => "it lets a waiting caller dial out of the queue",
        "membermacro" | "membergosub" => "it runs dialplan when a phone answers",
        "rvolume" | "rvol_mode" => "it sets call audio volume",
        "callback" => "it offers callers a call back",
        _ => return None,
    };
    Some(why)
}

/// Whether `value` is Asterisk's default for `key`, which FreePBX writes
/// out for every queue.
fn neutral_default(key: &str, value: &str) -> bool {
    matches!(
        (key, value),
        ("timeoutpriority", "app") | ("ringinuse", "yes") | ("queue-youarenext", "silence/1")
    )
}

/// Maps one queue. `settings` are in file order (templates first), so a
/// later value overrides an earlier one, as in Asterisk.
pub(crate) fn map_queue(
    extension: QueueExtension,
    name: String,
    settings: &[Setting<'_>],
    agents: &mut AgentBook,
    problems: &mut Vec<Problem>,
) -> QueueConfig {
    let mut queue = QueueConfig::new(extension, name, Strategy::Ringall, []);
    queue.ring_timeout_secs = ASTERISK_RING_TIMEOUT_SECS;
    let q = queue.extension.clone();
    for s in settings {
        let mut report = |text: String| problems.push(Problem::new(s.file, s.line, text));
        let key = s.key.to_ascii_lowercase();
        let value = s.value.trim();
        match key.as_str() {
            "member" => match parse_member(value) {
                Ok(member) => {
                    for note in &member.notes {
                        report(format!("queue {q}: {note}"));
                    }
                    if queue.member(&member.agent).is_some() {
                        report(format!(
                            "queue {q}: agent {} is already a member; this line is ignored",
                            member.agent
                        ));
                        continue;
                    }
                    agents.add(&member.agent, member.name.as_deref());
                    queue.members.push(MemberConfig {
                        agent: member.agent,
                        penalty: member.penalty,
                    });
                }
                Err(e) => report(format!("queue {q}: {e}; member not imported")),
            },
            "strategy" => match Strategy::from_asterisk(value) {
                Some(strategy) => queue.strategy = strategy,
                None => {
                    queue.strategy = Strategy::Ringall;
                    report(format!(
                        "queue {q}: unknown strategy `{value}`; using ringall, as Asterisk does"
                    ));
                }
            },
            "timeout" => match value.parse::<u32>() {
                Ok(0) => report(format!(
                    "queue {q}: timeout 0 rings members without limit on the PBX; Frontdesk needs a \
                     limit, kept {} s",
                    queue.ring_timeout_secs
                )),
                Ok(secs) => queue.ring_timeout_secs = secs,
                Err(_) => report(format!(
                    "queue {q}: timeout `{value}` is not a number of seconds; kept {} s",
                    queue.ring_timeout_secs
                )),
            },
            "wrapuptime" => match value.parse::<u32>() {
                Ok(secs) => queue.wrapup_secs = secs,
                Err(_) => report(format!(
                    "queue {q}: wrapuptime `{value}` is not a number of seconds; kept {} s",
                    queue.wrapup_secs
                )),
            },
            "autofill" if is_yes(value) => {}
            "autofill" => report(format!(
                "queue {q}: autofill={value} (one waiting caller at a time) is not imported; \
                 Frontdesk offers every waiting chat as agents free up"
            )),
            "maxlen" | "weight" | "penaltymemberslimit" if matches!(value, "" | "0") => {}
            "maxlen" => report(format!(
                "queue {q}: maxlen={value} is not imported; Frontdesk does not limit how many visitors wait"
            )),
            "weight" => report(format!(
                "queue {q}: weight={value} is not imported; Frontdesk does not rank queues sharing agents"
            )),
            "penaltymemberslimit" => report(format!(
                "queue {q}: penaltymemberslimit={value} is not imported; penalties always apply"
            )),
            "autopause" | "autopausebusy" | "autopauseunavail" if is_no_or_empty(value) => {}
            "autopause" | "autopausebusy" | "autopauseunavail" => report(format!(
                "queue {q}: {key}={value} is not imported; Frontdesk never pauses an agent by itself"
            )),
            "joinempty" if value.is_empty() || value.eq_ignore_ascii_case("yes") => {}
            "leavewhenempty" if is_no_or_empty(value) => {}
            "joinempty" | "leavewhenempty" => report(format!(
                "queue {q}: {key}={value} is not imported; Frontdesk keeps a visitor waiting \
                 until max_wait_secs"
            )),
            "defaultrule" if value.is_empty() => {}
            "defaultrule" => report(format!(
                "queue {q}: penalty rule `{value}` (queuerules.conf) is not imported"
            )),
            k => match no_chat_equivalent(k) {
                // Switched off (or Asterisk's default): nothing is lost.
                Some(_) if is_no_or_empty(value) || neutral_default(k, value) => {}
                // Template lines apply to every queue: one line each.
                Some(why) => {
                    let p = Problem::new(
                        s.file,
                        s.line,
                        format!("`{} = {value}` is not imported: {why}", s.key),
                    );
                    if !problems.contains(&p) {
                        problems.push(p);
                    }
                }
                None => problems.push(Problem::new(
                    s.file,
                    s.line,
                    format!("queue {q}: unknown option `{}`; ignored", s.key),
                )),
            },
        }
    }
    if let Err(e) = queue.validate() {
        problems.push(Problem::new(
            settings.first().map_or("", |s| s.file),
            0,
            e.to_string(),
        ));
    }
    queue
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> AgentExtension {
        s.parse().unwrap()
    }

    #[test]
    fn member_interfaces() {
        for (iface, ext) in [
            ("Local/101@from-queue/n", "101"),
            ("Local/102@from-queue", "102"),
            ("PJSIP/103", "103"),
            ("SIP/104", "104"),
            ("iax2/105", "105"),
            ("Agent/1001", "1001"),
        ] {
            assert_eq!(agent_of_interface(iface), Ok(a(ext)), "{iface}");
        }
        for (iface, err) in [
            ("DAHDI/1", "member `DAHDI/1` is a phone line, not an extension that can chat"),
            (
                "SIP/trunk/0612345678",
                "member `SIP/trunk/0612345678` dials 0612345678 through trunk, not an extension of this PBX",
            ),
            ("101", "member `101` is not Technology/resource (such as PJSIP/101)"),
            ("Custom/x", "member `Custom/x`: unknown channel technology `Custom`"),
        ] {
            assert_eq!(agent_of_interface(iface), Err(err.to_owned()), "{iface}");
        }
        assert!(agent_of_interface("Local/${EXT}@ctx")
            .unwrap_err()
            .contains("an extension may only hold"));
    }

    #[test]
    fn member_fields() {
        let m =
            parse_member(r#"Local/101@from-queue/n,2,"Smith, John",hint:101@ext-local"#).unwrap();
        assert_eq!((m.agent, m.penalty), (a("101"), 2));
        assert_eq!(m.name.as_deref(), Some("Smith, John"));
        assert_eq!(m.notes.len(), 1, "{:?}", m.notes);
        assert!(
            m.notes[0].contains("state interface `hint:101@ext-local`"),
            "{:?}",
            m.notes
        );
        let m = parse_member(r"PJSIP/102,0,Doe\, Jane,,,30,yes").unwrap();
        assert_eq!(m.name.as_deref(), Some("Doe, Jane"));
        assert_eq!(m.notes.len(), 2, "{:?}", m.notes);
        assert_eq!(
            parse_member("SIP/103,-1").unwrap_err(),
            "member `SIP/103`: penalty `-1` is not a whole number of 0 or more \
             (Asterisk would silently read it as 0)"
        );
        assert_eq!(parse_member(" ").unwrap_err(), "empty member line");
    }

    #[test]
    fn caller_id_names() {
        assert_eq!(
            callerid_name(r#""Alice Martin" <201>"#).as_deref(),
            Some("Alice Martin")
        );
        assert_eq!(callerid_name("Bob <202>").as_deref(), Some("Bob"));
        assert_eq!(callerid_name("<203>"), None);
        assert_eq!(callerid_name("204"), None);
        assert_eq!(callerid_name("Front desk").as_deref(), Some("Front desk"));
    }

    #[test]
    fn atoi_like_c() {
        assert_eq!(atoi(" 12ab"), 12);
        assert_eq!(atoi("-3"), -3);
        assert_eq!(atoi("x"), 0);
    }
}
