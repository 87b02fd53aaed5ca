//! The configuration every integration test starts from: three channels
//! (live, chatbot, and one closed today), two queues, three agents.

use std::path::Path;

use chrono::{Duration, Utc};
use frontdesk::config::Config;

use crate::database::TestDb;

/// The website origin the test channels allow.
pub const ALLOWED_ORIGIN: &str = "http://allowed.example";

/// The `[server]`, `[database]`, `[limits]` and `[waiting]` sections every test and
/// benchmark gateway shares: a loopback listener (the harness binds the
/// port), its own database and data directory, and rate limits no load
/// reaches by accident.
pub fn server_toml(database_url: &str, data_dir: &Path) -> String {
    let data_dir = toml::Value::String(data_dir.display().to_string());
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
data_dir = {data_dir}
shutdown_grace_secs = 5
# Every test client and the load generator connect from 127.0.0.1.
max_connections_per_ip = 4096

[database]
url = "{database_url}"

[limits]
requests_per_minute_per_ip = 1000000
conversations_per_hour_per_ip = 1000000
messages_per_minute_per_conversation = 1000000
websocket_upgrades_per_minute_per_ip = 1000000

[waiting]
# Every test visitor is the same client; load runs keep many chats waiting.
max_per_client = 0
"#
    )
}

/// The test configuration as TOML (also written to disk for gateway
/// processes), on a database and a data directory of the test's own.
pub fn test_config_toml(database_url: &str, data_dir: &Path) -> String {
    let today = Utc::now().date_naive();
    let tomorrow = today + Duration::days(1);
    let server = server_toml(database_url, data_dir);
    format!(
        r#"{server}
[[agents]]
extension = "101"
name = "Alice Martin"
xmpp = "alice@pbx.example.com"

[[agents]]
extension = "102"
name = "Bob Durand"
xmpp = "bob@pbx.example.com"

[[agents]]
extension = "103"
name = "Chloé Petit"
sip = "sip:103@pbx.example.com"

[[queues]]
extension = "600"
name = "Sales"
strategy = "ringall"
ring_timeout_secs = 30
members = [{{ agent = "101" }}, {{ agent = "102" }}]

[[queues]]
extension = "601"
name = "Support"
strategy = "rrmemory"
members = [{{ agent = "103" }}]

[[channels]]
key = "live"
name = "Acme Plumbing"
mode = "live"
queue = "600"
allowed_origins = ["{ALLOWED_ORIGIN}"]

[[channels]]
key = "bot"
name = "Acme Plumbing"
mode = "chatbot"
allowed_origins = ["{ALLOWED_ORIGIN}"]
options = [
  {{ id = "sales", label = "Buy something", welcome = "Great, a sales agent will be with you shortly.", queue = "600" }},
  {{ id = "support", label = "Get help", welcome = "Support will answer you in a moment.", queue = "601" }},
]

[[channels]]
key = "closed"
name = "Acme Plumbing"
mode = "live"
queue = "600"
allowed_origins = ["{ALLOWED_ORIGIN}"]
[channels.schedule]
timezone = "UTC"
open = ["00:00-23:59,*,*,*"]
holidays = ["{today}", "{tomorrow}"]
[channels.closed]
text = "We are closed. Back {{next_open}}."
alternatives = [{{ kind = "phone", label = "Call us", value = "+33 1 23 45 67 89" }}]
"#
    )
}

/// The test configuration on `db` and its data directory.
pub fn test_config(db: &TestDb) -> Config {
    toml::from_str(&test_config_toml(&db.url(), db.data_dir()))
        .expect("the test configuration is valid")
}
