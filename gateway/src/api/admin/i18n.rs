//! The console in English and French.
//!
//! One catalog per language, as a struct, so a missing translation is a
//! compile error rather than a key shown on screen. The language is the
//! `?lang=` of the request (remembered in a cookie), else that cookie, else
//! the browser's `Accept-Language`, else English. Data (channel names,
//! visitor text) is shown as it is. Refused fields are worded from their
//! [`FieldCode`] and params (French) or shown as the API's English
//! `message`; the script gets what it words itself (field errors, its
//! status lines, the business-hours explanation) as a JSON block in the
//! page ([`Texts::script_json`]).

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use pbx_adapter::queue::Strategy;

use crate::config::{FieldCode, FieldError};

/// The cookie that remembers the console's language.
const COOKIE: &str = "frontdesk_console_lang";

pub struct Texts {
    pub lang: &'static str,
    pub skip: &'static str,
    pub nav_label: &'static str,
    pub live: &'static str,
    pub channels: &'static str,
    pub queues_agents: &'static str,
    pub transcripts: &'static str,
    pub follow_up: &'static str,
    pub visitor_data: &'static str,
    pub audit: &'static str,
    pub log_out: &'static str,
    pub other_language: &'static str,
    pub other_language_code: &'static str,
    // Login
    pub login_title: &'static str,
    pub login_heading: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    pub log_in: &'static str,
    // Channels
    pub new_channel: &'static str,
    pub channels_caption: &'static str,
    pub name: &'static str,
    pub key: &'static str,
    pub mode: &'static str,
    pub state: &'static str,
    pub managed_in: &'static str,
    pub enabled: &'static str,
    pub disabled: &'static str,
    pub console: &'static str,
    pub live_chat: &'static str,
    pub chatbot: &'static str,
    pub no_channel: &'static str,
    // Channel editor
    pub channel: &'static str,
    pub read_only_note: &'static str,
    /// Where an item of the PBX is changed.
    pub pbx_note: &'static str,
    /// The source column's word for an item from the PBX.
    pub pbx: &'static str,
    pub key_label: &'static str,
    pub company_name: &'static str,
    pub mode_live: &'static str,
    pub mode_chatbot: &'static str,
    pub queue_live: &'static str,
    pub chatbot_options: &'static str,
    pub option_id: &'static str,
    pub option_label: &'static str,
    pub option_welcome: &'static str,
    pub option_queue: &'static str,
    pub add_option: &'static str,
    pub move_up: &'static str,
    pub move_down: &'static str,
    pub remove: &'static str,
    pub website_languages: &'static str,
    pub origins_label: &'static str,
    pub default_language: &'static str,
    pub languages: &'static str,
    pub business_hours: &'static str,
    pub timezone_label: &'static str,
    pub pbx_routing_label: &'static str,
    pub pbx_routing_help: &'static str,
    pub open_label: &'static str,
    pub holidays_label: &'static str,
    pub closed_text_label: &'static str,
    pub routes_label: &'static str,
    pub add_route: &'static str,
    pub route_when: &'static str,
    pub route_to: &'static str,
    pub route_default: &'static str,
    pub closures_label: &'static str,
    pub add_closure: &'static str,
    pub closure_name: &'static str,
    pub closure_text: &'static str,
    pub limits: &'static str,
    pub max_chars_label: &'static str,
    pub max_file_label: &'static str,
    pub retention_label: &'static str,
    pub save: &'static str,
    pub embed_code: &'static str,
    pub embed_hint: &'static str,
    pub copy: &'static str,
    // The widget preview beside the channel editor
    pub preview: &'static str,
    pub preview_hint: &'static str,
    pub preview_hours: &'static str,
    pub preview_as_scheduled: &'static str,
    pub preview_open: &'static str,
    pub preview_closed: &'static str,
    pub preview_page_language: &'static str,
    pub preview_frame: &'static str,
    pub preview_alone: &'static str,
    // Live
    pub connecting: &'static str,
    pub waiting_visitors: &'static str,
    pub visitor: &'static str,
    pub queue: &'static str,
    pub position: &'static str,
    pub waiting: &'static str,
    pub ringing: &'static str,
    pub nobody_waiting: &'static str,
    pub agents: &'static str,
    pub agent: &'static str,
    pub extension: &'static str,
    pub availability: &'static str,
    pub chats: &'static str,
    // Transcripts
    pub search_text: &'static str,
    pub from_date: &'static str,
    pub to_date: &'static str,
    pub all: &'static str,
    pub agent_extension: &'static str,
    pub search: &'static str,
    pub found_suffix: &'static str,
    pub select: &'static str,
    pub started_utc: &'static str,
    pub no_match: &'static str,
    pub export_json: &'static str,
    pub export_csv: &'static str,
    pub chat_with: &'static str,
    pub email: &'static str,
    pub page: &'static str,
    pub started: &'static str,
    pub ended: &'static str,
    pub download: &'static str,
    // Follow-up
    pub missed_heading: &'static str,
    pub out_of_hours_heading: &'static str,
    pub when_utc: &'static str,
    pub none: &'static str,
    // Visitor data
    pub visitors_intro: &'static str,
    pub email_address: &'static str,
    pub find: &'static str,
    pub conversations_for: &'static str,
    pub export_as_json: &'static str,
    pub erase_all: &'static str,
    // Queues and agents
    pub queues: &'static str,
    pub strategy: &'static str,
    pub members: &'static str,
    pub ring_timeout: &'static str,
    pub max_chats: &'static str,
    pub wrapup: &'static str,
    pub max_wait: &'static str,
    pub no_queue: &'static str,
    pub new_queue: &'static str,
    pub xmpp_address: &'static str,
    pub sip_uri: &'static str,
    pub no_agent: &'static str,
    pub new_agent: &'static str,
    // Audit
    pub audit_caption: &'static str,
    pub who: &'static str,
    pub what: &'static str,
    pub on: &'static str,
    pub nothing_yet: &'static str,
    // Queue and agent forms
    pub new_queue_title: &'static str,
    pub new_agent_title: &'static str,
    pub strategy_label: &'static str,
    pub members_label: &'static str,
    pub ring_timeout_label: &'static str,
    pub max_chats_label: &'static str,
    pub wrapup_label: &'static str,
    pub max_wait_label: &'static str,
    pub agent_name_label: &'static str,
    pub xmpp_label: &'static str,
    pub sip_label: &'static str,
    /// A queue strategy, named as in Asterisk and explained.
    pub strategy_name: fn(Strategy) -> &'static str,
    // Accounts
    pub users: &'static str,
    pub api_tokens: &'static str,
    pub tenants: &'static str,
    pub change_password: &'static str,
    pub role: &'static str,
    pub role_admin: &'static str,
    pub role_supervisor: &'static str,
    pub role_superadmin: &'static str,
    pub tenant: &'static str,
    pub created_utc: &'static str,
    pub created_by: &'static str,
    pub actions: &'static str,
    pub users_caption: &'static str,
    pub no_user: &'static str,
    pub you: &'static str,
    pub new_user: &'static str,
    /// `{min}`: the shortest password.
    pub password_rule_label: &'static str,
    /// `{min}`: the shortest password.
    pub new_password_label: &'static str,
    pub create_user: &'static str,
    pub role_of: &'static str,
    pub change_role: &'static str,
    pub delete: &'static str,
    pub users_read_only: &'static str,
    pub show_tenant: &'static str,
    pub tokens_intro: &'static str,
    pub tokens_caption: &'static str,
    pub no_token: &'static str,
    pub new_token: &'static str,
    pub token_name: &'static str,
    pub create_token: &'static str,
    pub token_secret_heading: &'static str,
    pub token_warning: &'static str,
    pub revoke: &'static str,
    pub tokens_admin_only: &'static str,
    pub tenants_caption: &'static str,
    pub new_tenant: &'static str,
    pub tenant_id_label: &'static str,
    pub create_tenant: &'static str,
    pub current_password: &'static str,
    pub confirm_password: &'static str,
    pub password_note: &'static str,
    pub password_changed: &'static str,
    pub password_not_changed: &'static str,
    // Errors the console words itself
    pub bad_credentials: &'static str,
    pub too_many_attempts: &'static str,
    pub not_from_console: &'static str,
    /// A refused field's rule in this language (`{name}`: its params);
    /// `None`: show the API's English message.
    pub field: fn(FieldCode) -> Option<&'static str>,
    /// What the script says itself, by key (`{name}`: a value it fills in).
    pub script: &'static [(&'static str, &'static str)],
}

pub static EN: Texts = Texts {
    lang: "en",
    skip: "Skip to content",
    nav_label: "Console",
    live: "Live",
    channels: "Channels",
    queues_agents: "Queues and agents",
    transcripts: "Transcripts",
    follow_up: "Follow-up",
    visitor_data: "Visitor data",
    audit: "Audit log",
    log_out: "Log out",
    other_language: "Français",
    other_language_code: "fr",
    login_title: "Log in",
    login_heading: "Log in to Frontdesk",
    username: "User name",
    password: "Password",
    log_in: "Log in",
    new_channel: "New channel",
    channels_caption: "Chat widget channels",
    name: "Name",
    key: "Key",
    mode: "Mode",
    state: "State",
    managed_in: "Managed in",
    enabled: "Enabled",
    disabled: "Disabled",
    console: "Console",
    live_chat: "Live chat",
    chatbot: "Chatbot",
    no_channel: "No channel yet.",
    channel: "Channel",
    read_only_note: "This item is managed in frontdesk.toml: change it there (it is read-only here).",
    pbx_note: "This item comes from the PBX (frontdesk pbx sync): change it on the PBX (it is read-only here).",
    pbx: "PBX",
    key_label: "Key (letters, digits, - and _; in the embed code)",
    company_name: "Company name shown in the widget",
    mode_live: "Live chat to one queue",
    mode_chatbot: "Chatbot menu",
    queue_live: "Queue (live chat)",
    chatbot_options: "Chatbot options",
    option_id: "Id",
    option_label: "Label",
    option_welcome: "Welcome message",
    option_queue: "Queue",
    add_option: "Add an option",
    move_up: "Move up",
    move_down: "Move down",
    remove: "Remove",
    website_languages: "Website and languages",
    origins_label: "Allowed origins, one per line (https://www.example.com)",
    default_language: "Default language",
    languages: "Languages",
    business_hours: "Business hours",
    timezone_label: "Time zone (IANA, e.g. Europe/Paris)",
    pbx_routing_label: "Follow the PBX routing of",
    pbx_routing_help: "An entry point as `frontdesk pbx import` names it (from-pstn,0123456789 or inbound route `Main line`); `frontdesk pbx sync` then keeps this schedule in line with the PBX.",
    open_label: "Open when, one Asterisk time condition per line (09:00-18:00,mon-fri,*,*); empty: always open",
    holidays_label: "Holidays, one per line (2026-12-25 Christmas)",
    closed_text_label: "Out-of-hours text ({next_open} is replaced by the next opening)",
    routes_label: "Routes by time (first match wins)",
    add_route: "Add a route",
    route_when: "When: time conditions or holiday dates (2026-12-25 Christmas), one per line",
    route_to: "Goes to",
    route_default: "When no route holds, goes to",
    closures_label: "Named closures",
    add_closure: "Add a closure",
    closure_name: "Name",
    closure_text: "Text shown to visitors",
    limits: "Limits",
    max_chars_label: "Longest message (characters)",
    max_file_label: "Largest file (bytes)",
    retention_label: "Keep ended chats (days; 0 for ever)",
    save: "Save",
    embed_code: "Embed code",
    embed_hint: "Paste this before </head> on every page of the site:",
    copy: "Copy",
    preview: "Preview",
    preview_hint: "What visitors would see with this draft, before you save it. Nothing is sent from the preview.",
    preview_hours: "Hours in the preview",
    preview_as_scheduled: "As the business hours say now",
    preview_open: "Open",
    preview_closed: "Closed",
    preview_page_language: "Language of the visitor's page",
    preview_frame: "Widget preview",
    preview_alone: "This is the widget preview of the channel editor: open a channel's page to see it.",
    connecting: "Connecting…",
    waiting_visitors: "Waiting visitors",
    visitor: "Visitor",
    queue: "Queue",
    position: "Position",
    waiting: "Waiting",
    ringing: "Ringing",
    nobody_waiting: "Nobody is waiting.",
    agents: "Agents",
    agent: "Agent",
    extension: "Extension",
    availability: "Availability",
    chats: "Chats",
    search_text: "Visitor name or e-mail",
    from_date: "From (YYYY-MM-DD)",
    to_date: "To (YYYY-MM-DD)",
    all: "All",
    agent_extension: "Agent extension",
    search: "Search",
    found_suffix: "conversations (newest first; tick some to export only those)",
    select: "Select",
    started_utc: "Started (UTC)",
    no_match: "No conversation matches.",
    export_json: "Export JSON",
    export_csv: "Export CSV",
    chat_with: "Chat with",
    email: "E-mail",
    page: "Page",
    started: "Started",
    ended: "Ended",
    download: "Download",
    missed_heading: "Missed chats (the visitor left before an agent answered)",
    out_of_hours_heading: "Out-of-hours attempts",
    when_utc: "When (UTC)",
    none: "None.",
    visitors_intro: "Find everything held about a visitor by e-mail address, export it, or erase it (conversations, their files, out-of-hours attempts). Erasing is recorded in the audit log.",
    email_address: "E-mail address",
    find: "Find",
    conversations_for: "conversations for",
    export_as_json: "Export as JSON",
    erase_all: "Erase all of it",
    queues: "Queues",
    strategy: "Strategy",
    members: "Members",
    ring_timeout: "Ring timeout",
    max_chats: "Max chats",
    wrapup: "Wrap-up",
    max_wait: "Max wait",
    no_queue: "No queue yet.",
    new_queue: "New queue",
    xmpp_address: "XMPP address",
    sip_uri: "SIP URI",
    no_agent: "No agent yet.",
    new_agent: "New agent",
    audit_caption: "Who changed what, when",
    who: "Who",
    what: "What",
    on: "On",
    nothing_yet: "Nothing yet.",
    new_queue_title: "New queue",
    new_agent_title: "New agent",
    strategy_label: "Strategy (as in Asterisk's queues.conf)",
    members_label: "Members, one per line: agent extension, then an optional penalty (101 2)",
    ring_timeout_label: "Ring timeout (seconds)",
    max_chats_label: "Most chats per agent",
    wrapup_label: "Wrap-up time (seconds)",
    max_wait_label: "Longest wait before overflow (seconds; empty: for ever)",
    agent_name_label: "Name shown to visitors",
    xmpp_label: "XMPP address (alice@pbx.example.com)",
    sip_label: "SIP URI (sip:101@pbx.example.com)",
    strategy_name: en_strategy,
    users: "Users",
    api_tokens: "API tokens",
    tenants: "Tenants",
    change_password: "Change password",
    role: "Role",
    role_admin: "Admin",
    role_supervisor: "Supervisor (reads, changes nothing)",
    role_superadmin: "Super-admin",
    tenant: "Tenant",
    created_utc: "Created (UTC)",
    created_by: "Created by",
    actions: "Actions",
    users_caption: "Who can log in to this tenant's console",
    no_user: "No user yet.",
    you: "(you)",
    new_user: "New user",
    password_rule_label: "Password (at least {min} characters)",
    new_password_label: "New password (at least {min} characters)",
    create_user: "Create user",
    role_of: "Role of",
    change_role: "Change role",
    delete: "Delete",
    users_read_only: "Only admins add, change or delete users.",
    show_tenant: "Show",
    tokens_intro: "API tokens let programs use the admin API (Authorization: Bearer …) as an admin or a supervisor of this tenant.",
    tokens_caption: "This tenant's API tokens (their secrets are never shown again)",
    no_token: "No token yet.",
    new_token: "New token",
    token_name: "Name (what uses it, e.g. CRM sync)",
    create_token: "Create token",
    token_secret_heading: "The new token",
    token_warning: "Copy it now and keep it safe: it is shown only this once and cannot be shown again.",
    revoke: "Revoke",
    tokens_admin_only: "Only admins manage API tokens.",
    tenants_caption: "Every tenant of this gateway",
    new_tenant: "New tenant",
    tenant_id_label: "Id (lowercase letters, digits and -)",
    create_tenant: "Create tenant",
    current_password: "Current password",
    confirm_password: "New password again",
    password_note: "Changing your password logs you out everywhere else.",
    password_changed: "Your password is changed. Your other sessions are logged out.",
    password_not_changed: "Your password is not changed.",
    bad_credentials: "Wrong user name or password.",
    too_many_attempts: "Too many attempts. Wait a moment and try again.",
    not_from_console: "This form did not come from the console.",
    field: |_| None,
    script: &[
        ("saving", "Saving…"),
        ("not_saved", "Not saved."),
        ("token_created", "Token {name} created."),
        ("token_revoke_confirm", "Revoke the token {name}? Programs using it lose access at once."),
        ("token_revoked", "Token {name} revoked."),
        ("user_created", "User {name} created: they can log in now."),
        ("user_delete_confirm", "Delete the account {name}? They are logged out at once."),
        ("user_deleted", "Account {name} deleted."),
        ("role_changed", "The role of {name} is now: {role}."),
        ("tenant_created", "Tenant {id} created."),
        ("hours", "{state} at {time} ({zone}): {reason}"),
        ("hours_open", "Open"),
        ("hours_closed", "Closed"),
        ("hours_always_open", "no open rules, so always open"),
        ("hours_rule", "open rule #{n} `{spec}` holds"),
        ("hours_holiday", "holiday {label}"),
        ("hours_outside_rules", "outside all {rules} open rule(s)"),
        ("hours_next", "Next opening:"),
        ("hours_route", "route #{n} `{spec}` holds, so {to}"),
        ("hours_route_holiday", "route #{n} holiday {label} holds, so {to}"),
        ("hours_default", "none of the {routes} route(s) holds, so the default: {to}"),
        ("to_open", "the channel's queue or menu"),
        ("to_menu", "the chatbot menu"),
        ("to_queue", "queue {queue}"),
        ("to_closed", "closed"),
        ("to_closure", "closed ({name})"),
        ("routing", "This channel routes by time: the open rules and holidays above do not apply."),
        ("routing_pbx", "These routes follow the PBX's entry point {entry}: `frontdesk pbx sync` keeps them in line, so they are changed on the PBX."),
        ("erase_confirm", "Erase every conversation and file of {email}? This cannot be undone."),
        ("erased", "Erased {conversations} conversations and {files} files."),
    ],
};

pub static FR: Texts = Texts {
    lang: "fr",
    skip: "Aller au contenu",
    nav_label: "Console",
    live: "En direct",
    channels: "Canaux",
    queues_agents: "Files et agents",
    transcripts: "Historique",
    follow_up: "À rappeler",
    visitor_data: "Données des visiteurs",
    audit: "Journal d'audit",
    log_out: "Se déconnecter",
    other_language: "English",
    other_language_code: "en",
    login_title: "Connexion",
    login_heading: "Connexion à Frontdesk",
    username: "Nom d'utilisateur",
    password: "Mot de passe",
    log_in: "Se connecter",
    new_channel: "Nouveau canal",
    channels_caption: "Canaux du widget de chat",
    name: "Nom",
    key: "Clé",
    mode: "Mode",
    state: "État",
    managed_in: "Géré dans",
    enabled: "Activé",
    disabled: "Désactivé",
    console: "Console",
    live_chat: "Chat en direct",
    chatbot: "Chatbot",
    no_channel: "Aucun canal pour l'instant.",
    channel: "Canal",
    read_only_note: "Cet élément est géré dans frontdesk.toml : modifiez-le là (il est en lecture seule ici).",
    pbx_note: "Cet élément vient du PBX (frontdesk pbx sync) : modifiez-le sur le PBX (il est en lecture seule ici).",
    pbx: "PBX",
    key_label: "Clé (lettres, chiffres, - et _ ; dans le code d'intégration)",
    company_name: "Nom de l'entreprise affiché dans le widget",
    mode_live: "Chat en direct vers une file",
    mode_chatbot: "Menu de chatbot",
    queue_live: "File (chat en direct)",
    chatbot_options: "Options du chatbot",
    option_id: "Identifiant",
    option_label: "Libellé",
    option_welcome: "Message d'accueil",
    option_queue: "File",
    add_option: "Ajouter une option",
    move_up: "Monter",
    move_down: "Descendre",
    remove: "Supprimer",
    website_languages: "Site et langues",
    origins_label: "Origines autorisées, une par ligne (https://www.example.com)",
    default_language: "Langue par défaut",
    languages: "Langues",
    business_hours: "Heures d'ouverture",
    timezone_label: "Fuseau horaire (IANA, p. ex. Europe/Paris)",
    pbx_routing_label: "Suivre le routage PBX de",
    pbx_routing_help: "Un point d'entrée tel que `frontdesk pbx import` le nomme (from-pstn,0123456789 ou inbound route `Main line`) ; `frontdesk pbx sync` tient alors ces horaires à jour depuis le PBX.",
    open_label: "Ouvert quand, une condition horaire Asterisk par ligne (09:00-18:00,mon-fri,*,*) ; vide : toujours ouvert",
    holidays_label: "Jours fériés, un par ligne (2026-12-25 Noël)",
    closed_text_label: "Texte hors des heures d'ouverture ({next_open} est remplacé par la prochaine ouverture)",
    routes_label: "Routes horaires (la première qui s'applique l'emporte)",
    add_route: "Ajouter une route",
    route_when: "Quand : conditions horaires ou dates fériées (2026-12-25 Noël), une par ligne",
    route_to: "Va vers",
    route_default: "Quand aucune route ne s'applique, va vers",
    closures_label: "Fermetures nommées",
    add_closure: "Ajouter une fermeture",
    closure_name: "Nom",
    closure_text: "Texte montré aux visiteurs",
    limits: "Limites",
    max_chars_label: "Message le plus long (caractères)",
    max_file_label: "Fichier le plus gros (octets)",
    retention_label: "Conserver les chats terminés (jours ; 0 pour toujours)",
    save: "Enregistrer",
    embed_code: "Code d'intégration",
    embed_hint: "Collez ceci avant </head> sur chaque page du site :",
    copy: "Copier",
    preview: "Aperçu",
    preview_hint: "Ce que les visiteurs verraient avec ce brouillon, avant de l'enregistrer. Rien n'est envoyé depuis l'aperçu.",
    preview_hours: "Horaires dans l'aperçu",
    preview_as_scheduled: "Selon les heures d'ouverture actuelles",
    preview_open: "Ouvert",
    preview_closed: "Fermé",
    preview_page_language: "Langue de la page du visiteur",
    preview_frame: "Aperçu du widget",
    preview_alone: "Ceci est l'aperçu du widget de l'éditeur de canal : ouvrez la page d'un canal pour le voir.",
    connecting: "Connexion…",
    waiting_visitors: "Visiteurs en attente",
    visitor: "Visiteur",
    queue: "File",
    position: "Position",
    waiting: "Attente",
    ringing: "Sonne chez",
    nobody_waiting: "Personne n'attend.",
    agents: "Agents",
    agent: "Agent",
    extension: "Poste",
    availability: "Disponibilité",
    chats: "Chats",
    search_text: "Nom ou e-mail du visiteur",
    from_date: "Du (AAAA-MM-JJ)",
    to_date: "Au (AAAA-MM-JJ)",
    all: "Tous",
    agent_extension: "Poste de l'agent",
    search: "Rechercher",
    found_suffix: "conversations (les plus récentes d'abord ; cochez-en pour n'exporter qu'elles)",
    select: "Sélectionner",
    started_utc: "Début (UTC)",
    no_match: "Aucune conversation ne correspond.",
    export_json: "Exporter en JSON",
    export_csv: "Exporter en CSV",
    chat_with: "Chat avec",
    email: "E-mail",
    page: "Page",
    started: "Début",
    ended: "Fin",
    download: "Télécharger",
    missed_heading: "Chats manqués (le visiteur est parti avant qu'un agent réponde)",
    out_of_hours_heading: "Tentatives hors des heures d'ouverture",
    when_utc: "Quand (UTC)",
    none: "Aucun.",
    visitors_intro: "Retrouvez tout ce qui est conservé sur un visiteur par son adresse e-mail, exportez-le ou effacez-le (conversations, fichiers, tentatives hors des heures d'ouverture). L'effacement est inscrit au journal d'audit.",
    email_address: "Adresse e-mail",
    find: "Chercher",
    conversations_for: "conversations pour",
    export_as_json: "Exporter en JSON",
    erase_all: "Tout effacer",
    queues: "Files",
    strategy: "Stratégie",
    members: "Membres",
    ring_timeout: "Durée de sonnerie",
    max_chats: "Chats max.",
    wrapup: "Temps de clôture",
    max_wait: "Attente max.",
    no_queue: "Aucune file pour l'instant.",
    new_queue: "Nouvelle file",
    xmpp_address: "Adresse XMPP",
    sip_uri: "URI SIP",
    no_agent: "Aucun agent pour l'instant.",
    new_agent: "Nouvel agent",
    audit_caption: "Qui a changé quoi, et quand",
    who: "Qui",
    what: "Quoi",
    on: "Sur",
    nothing_yet: "Rien pour l'instant.",
    new_queue_title: "Nouvelle file",
    new_agent_title: "Nouvel agent",
    strategy_label: "Stratégie (comme dans queues.conf d'Asterisk)",
    members_label: "Membres, un par ligne : poste de l'agent, puis une pénalité facultative (101 2)",
    ring_timeout_label: "Durée de sonnerie (secondes)",
    max_chats_label: "Chats simultanés par agent, au plus",
    wrapup_label: "Temps de clôture (secondes)",
    max_wait_label: "Attente maximale avant débordement (secondes ; vide : sans limite)",
    agent_name_label: "Nom affiché aux visiteurs",
    xmpp_label: "Adresse XMPP (alice@pbx.example.com)",
    sip_label: "URI SIP (sip:101@pbx.example.com)",
    strategy_name: fr_strategy,
    users: "Utilisateurs",
    api_tokens: "Jetons d'API",
    tenants: "Organisations",
    change_password: "Changer de mot de passe",
    role: "Rôle",
    role_admin: "Administrateur",
    role_supervisor: "Superviseur (consulte, ne change rien)",
    role_superadmin: "Super-administrateur",
    tenant: "Organisation",
    created_utc: "Créé (UTC)",
    created_by: "Créé par",
    actions: "Actions",
    users_caption: "Qui peut se connecter à la console de cette organisation",
    no_user: "Aucun utilisateur pour l'instant.",
    you: "(vous)",
    new_user: "Nouvel utilisateur",
    password_rule_label: "Mot de passe ({min} caractères au moins)",
    new_password_label: "Nouveau mot de passe ({min} caractères au moins)",
    create_user: "Créer l'utilisateur",
    role_of: "Rôle de",
    change_role: "Changer le rôle",
    delete: "Supprimer",
    users_read_only: "Seuls les administrateurs ajoutent, modifient ou suppriment des utilisateurs.",
    show_tenant: "Afficher",
    tokens_intro: "Les jetons d'API permettent à des programmes d'utiliser l'API d'administration (Authorization: Bearer …) comme administrateur ou superviseur de cette organisation.",
    tokens_caption: "Les jetons d'API de cette organisation (leur secret n'est plus jamais affiché)",
    no_token: "Aucun jeton pour l'instant.",
    new_token: "Nouveau jeton",
    token_name: "Nom (ce qui l'utilise, p. ex. synchro CRM)",
    create_token: "Créer le jeton",
    token_secret_heading: "Le nouveau jeton",
    token_warning: "Copiez-le maintenant et gardez-le en lieu sûr : il n'est affiché que cette fois et ne pourra plus l'être.",
    revoke: "Révoquer",
    tokens_admin_only: "Seuls les administrateurs gèrent les jetons d'API.",
    tenants_caption: "Toutes les organisations de cette passerelle",
    new_tenant: "Nouvelle organisation",
    tenant_id_label: "Identifiant (lettres minuscules, chiffres et -)",
    create_tenant: "Créer l'organisation",
    current_password: "Mot de passe actuel",
    confirm_password: "Nouveau mot de passe, à nouveau",
    password_note: "Changer de mot de passe vous déconnecte partout ailleurs.",
    password_changed: "Votre mot de passe est changé. Vos autres sessions sont déconnectées.",
    password_not_changed: "Votre mot de passe n'est pas changé.",
    bad_credentials: "Nom d'utilisateur ou mot de passe incorrect.",
    too_many_attempts: "Trop de tentatives. Patientez un instant puis réessayez.",
    not_from_console: "Ce formulaire ne vient pas de la console.",
    field: fr_field,
    script: &[
        ("saving", "Enregistrement…"),
        ("not_saved", "Non enregistré."),
        ("token_created", "Jeton {name} créé."),
        ("token_revoke_confirm", "Révoquer le jeton {name} ? Les programmes qui l'utilisent perdent l'accès aussitôt."),
        ("token_revoked", "Jeton {name} révoqué."),
        ("user_created", "Utilisateur {name} créé : il peut se connecter dès maintenant."),
        ("user_delete_confirm", "Supprimer le compte {name} ? Il est déconnecté aussitôt."),
        ("user_deleted", "Compte {name} supprimé."),
        ("role_changed", "Le rôle de {name} est maintenant : {role}."),
        ("tenant_created", "Organisation {id} créée."),
        ("hours", "{state} le {time} ({zone}) : {reason}"),
        ("hours_open", "Ouvert"),
        ("hours_closed", "Fermé"),
        ("hours_always_open", "aucune règle d'ouverture, donc toujours ouvert"),
        ("hours_rule", "la règle d'ouverture n° {n} « {spec} » s'applique"),
        ("hours_holiday", "jour férié : {label}"),
        ("hours_outside_rules", "en dehors des {rules} règle(s) d'ouverture"),
        ("hours_next", "Prochaine ouverture :"),
        ("hours_route", "la route n° {n} « {spec} » s'applique, donc {to}"),
        ("hours_route_holiday", "la route n° {n} (jour férié {label}) s'applique, donc {to}"),
        ("hours_default", "aucune des {routes} route(s) ne s'applique, donc la destination par défaut : {to}"),
        ("to_open", "la file ou le menu du canal"),
        ("to_menu", "le menu du chatbot"),
        ("to_queue", "la file {queue}"),
        ("to_closed", "fermé"),
        ("to_closure", "fermé ({name})"),
        ("routing", "Ce canal suit un routage horaire : les règles d'ouverture et jours fériés ci-dessus ne s'appliquent pas."),
        ("routing_pbx", "Ces routes suivent le point d'entrée {entry} du PBX : `frontdesk pbx sync` les tient à jour, elles se modifient donc sur le PBX."),
        ("erase_confirm", "Effacer toutes les conversations et tous les fichiers de {email} ? C'est irréversible."),
        ("erased", "{conversations} conversations et {files} fichiers effacés."),
    ],
};

fn en_strategy(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Ringall => "ringall: every free agent at once",
        Strategy::Leastrecent => "leastrecent: the agent whose last chat ended longest ago",
        Strategy::Fewestcalls => "fewestcalls: the agent who took the fewest chats",
        Strategy::Random => "random: a random agent",
        Strategy::Rrmemory => "rrmemory: round robin, after the last one offered",
        Strategy::Rrordered => "rrordered: round robin in member order",
        Strategy::Linear => "linear: the first free agent in member order",
        Strategy::Wrandom => "wrandom: a random agent, weighted by penalty",
    }
}

fn fr_strategy(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Ringall => "ringall : tous les agents libres à la fois",
        Strategy::Leastrecent => {
            "leastrecent : l'agent dont le dernier chat a fini il y a le plus longtemps"
        }
        Strategy::Fewestcalls => "fewestcalls : l'agent qui a pris le moins de chats",
        Strategy::Random => "random : un agent au hasard",
        Strategy::Rrmemory => "rrmemory : chacun son tour, après le dernier sollicité",
        Strategy::Rrordered => "rrordered : chacun son tour, dans l'ordre des membres",
        Strategy::Linear => "linear : le premier agent libre dans l'ordre des membres",
        Strategy::Wrandom => "wrandom : un agent au hasard, pondéré par la pénalité",
    }
}

/// The French wording of every rule (`{name}`: a param of the error).
fn fr_field(code: FieldCode) -> Option<&'static str> {
    use FieldCode as C;
    Some(match code {
        C::Invalid => return None,
        C::Empty => "ne peut pas être vide",
        C::TooLong => "{max} caractères au plus",
        C::ChannelKeyTwice => "deux canaux ont cette clé",
        C::LiveNeedsQueue => "un canal de chat en direct a besoin d'une file",
        C::QueueUnknown => "la file {queue} n'est pas définie",
        C::ChatbotNeedsOptions => "un canal chatbot a besoin d'options",
        C::OptionIds => "les identifiants d'option doivent être non vides et uniques : « {id} »",
        C::OriginInvalid => "« {origin} » n'est pas une origine (https://www.example.com)",
        C::OriginNotHttp => "« {origin} » n'est pas une origine http(s)",
        C::OriginHasPath => "« {origin} » doit être une origine seule (schéma://hôte[:port]), sans chemin",
        C::LanguageNotOffered => "« {language} » doit être l'une des langues du canal",
        C::LanguageUnsupported => "« {language} » n'est pas l'une des langues {supported}",
        C::TimezoneUnknown => "fuseau horaire inconnu « {timezone} » (un nom IANA comme Europe/Paris)",
        C::OpenRuleInvalid => "la règle d'ouverture « {rule} » n'est pas une condition horaire Asterisk (heures,jours,jours du mois,mois[,fuseau], p. ex. 09:00-18:00,mon-fri,*,*)",
        C::HolidayInvalid => "le jour férié « {holiday} » n'est ni une date AAAA-MM-JJ ni une période AAAA-MM-JJ..AAAA-MM-JJ",
        C::HolidaysFile => "le fichier de jours fériés {file} est illisible",
        C::HolidaysFileConsole => "un fichier iCalendar du serveur ne se nomme que dans frontdesk.toml",
        C::RoutesWithOpen => "les routes remplacent « open », « holidays » et « holidays_ics » : écrivez-les en routes",
        C::DefaultWithoutRoutes => "une destination par défaut n'a de sens qu'avec des routes",
        C::RouteMatcher => "la route n° {route} a besoin soit d'une condition horaire, soit de jours fériés, pas des deux",
        C::MenuNeedsOptions => "une route mène au menu du chatbot, mais le canal n'a pas d'options",
        C::ClosureUnknown => "une route mène à la fermeture « {closure} », qui n'est pas définie pour ce canal",
        C::LimitsZero => "les limites doivent être supérieures à zéro",
        C::MaxMessageChars => "{max} au plus",
        C::ConversationBytes => "doit valoir au moins max_file_bytes",
        C::QueueNameEmpty => "file {queue} : le nom ne peut pas être vide",
        C::RingTimeoutZero => "file {queue} : la durée de sonnerie est d'au moins 1 seconde",
        C::MaxChatsZero => "file {queue} : au moins 1 chat par agent",
        C::MaxWaitZero => "file {queue} : l'attente maximale est d'au moins 1 seconde (vide : sans limite)",
        C::MemberTwice => "file {queue} : l'agent {agent} figure deux fois parmi les membres",
        C::OverflowToItself => "file {queue} : le débordement ne peut pas mener à la file elle-même",
        C::AgentNameEmpty => "agent {agent} : le nom ne peut pas être vide",
        C::AgentUnreachable => "agent {agent} : il faut une adresse XMPP ou une URI SIP (ou les deux) pour recevoir des chats",
        C::QueueTwice => "la file {queue} est définie plusieurs fois",
        C::AgentTwice => "l'agent {agent} est défini plusieurs fois",
        C::ExtensionClash => "le poste {extension} est à la fois une file et un agent : un transfert vers lui serait ambigu",
        C::JidTwice => "les agents {first} et {second} ont la même adresse XMPP {jid}",
        C::SipUriTwice => "les agents {first} et {second} ont la même URI SIP {uri}",
        C::MemberUnknown => "file {queue} : le membre {agent} n'est pas un agent défini",
        C::OverflowUnknown => "file {queue} : le débordement mène à la file {target}, qui n'est pas définie",
        C::OverflowLoop => "les files {queues} débordent l'une dans l'autre en boucle",
        C::KeyInUse => "{key} est déjà pris : choisissez-en un autre",
        C::UsernameInvalid => "le nom d'utilisateur compte 1 à 64 lettres, chiffres, « . », « _ », « - » ou « @ »",
        C::UsernameTaken => "un utilisateur nommé « {username} » existe déjà",
        C::PasswordShort => "le mot de passe compte au moins {min} caractères",
        C::PasswordWrong => "ce n'est pas votre mot de passe actuel",
        C::PasswordsDiffer => "les deux nouveaux mots de passe diffèrent",
        C::TenantNotYours => "vous ne gérez que votre propre organisation",
        C::TenantUnknown => "cette organisation n'existe pas",
        C::TenantIdInvalid => "1 à 64 lettres minuscules, chiffres ou « - »",
        C::TenantTaken => "une organisation a déjà cet identifiant",
        C::RoleNotAllowed => "ce rôle ne se donne pas ici (un super-administrateur se crée avec frontdesk admin create-user)",
        C::TokenRole => "un jeton est administrateur ou superviseur d'une organisation",
        C::UserSelf => "vous ne pouvez ni supprimer votre propre compte ni changer son rôle",
    })
}

/// `template` with each `{name}` replaced by `params[name]`.
fn fill<'a>(template: &str, params: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    params
        .into_iter()
        .fold(template.to_owned(), |text, (name, value)| {
            text.replace(&format!("{{{name}}}"), value)
        })
}

impl Texts {
    /// A refused field in this language.
    pub fn field_error(&self, error: &FieldError) -> String {
        match (self.field)(error.code) {
            Some(template) => fill(
                template,
                (error.params.iter()).map(|(k, v)| (*k, v.as_str())),
            ),
            None => error.message.clone(),
        }
    }

    /// A label with the limit it names (`{min}`, `{max}`) filled in.
    pub fn with_limit(&self, template: &'static str, name: &str, limit: usize) -> String {
        fill(template, [(name, limit.to_string().as_str())])
    }

    /// What the console's script words itself, as JSON for a
    /// `<script type="application/json">` block: `fields` (code →
    /// wording; absent: show the message) and `say` (key → text). `<` is
    /// escaped so the block cannot end early.
    pub fn script_json(&self) -> String {
        let fields: serde_json::Map<String, serde_json::Value> = FieldCode::ALL
            .iter()
            .filter_map(|code| {
                let name = serde_json::to_value(code).ok()?.as_str()?.to_owned();
                Some((name, (self.field)(*code)?.into()))
            })
            .collect();
        let say: serde_json::Map<String, serde_json::Value> = (self.script.iter())
            .map(|(k, v)| ((*k).to_owned(), (*v).into()))
            .collect();
        serde_json::json!({ "fields": fields, "say": say })
            .to_string()
            .replace('<', "\\u003c")
    }
}

/// The language of a console request.
#[derive(Clone, Copy)]
pub struct Lang(pub &'static Texts);

fn by_code(code: &str) -> Option<&'static Texts> {
    match code.get(..2)?.to_ascii_lowercase().as_str() {
        "en" => Some(&EN),
        "fr" => Some(&FR),
        _ => None,
    }
}

fn query_lang(parts: &Parts) -> Option<&'static Texts> {
    let query = parts.uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "lang")
        .and_then(|(_, v)| by_code(&v))
}

fn cookie_lang(parts: &Parts) -> Option<&'static Texts> {
    let cookies = parts.headers.get(header::COOKIE)?.to_str().ok()?;
    cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .and_then(|(_, v)| by_code(v))
}

fn accept_lang(parts: &Parts) -> Option<&'static Texts> {
    let accept = parts.headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
    accept
        .split(',')
        .filter_map(|entry| by_code(entry.trim()))
        .next()
}

impl Lang {
    pub fn of(parts: &Parts) -> Lang {
        Lang(
            query_lang(parts)
                .or_else(|| cookie_lang(parts))
                .or_else(|| accept_lang(parts))
                .unwrap_or(&EN),
        )
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Lang {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Lang::of(parts))
    }
}

/// Remembers a `?lang=` choice in a cookie.
pub async fn remember(request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let chosen = query_lang(&parts);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if let Some(texts) = chosen {
        let cookie = format!(
            "{COOKIE}={}; Path=/admin; Max-Age=31536000; SameSite=Strict; HttpOnly",
            texts.lang
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut request = axum::http::Request::builder().uri(uri);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.body(()).unwrap().into_parts().0
    }

    /// The `{name}`s of a text.
    fn placeholders(text: &str) -> Vec<&str> {
        let mut names: Vec<&str> = (text.split('{').skip(1))
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
            .collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn every_rule_and_script_line_is_in_both_languages_with_the_same_blanks() {
        for code in FieldCode::ALL {
            assert_eq!(
                (FR.field)(*code).is_none(),
                *code == FieldCode::Invalid,
                "{code:?} has a French wording (only `invalid` shows the message)"
            );
        }
        let keys = |t: &Texts| t.script.iter().map(|(k, _)| *k).collect::<Vec<_>>();
        assert_eq!(keys(&EN), keys(&FR));
        for ((key, en), (_, fr)) in EN.script.iter().zip(FR.script) {
            assert_eq!(placeholders(en), placeholders(fr), "{key}");
        }
        for strategy in Strategy::ALL {
            assert!((FR.strategy_name)(strategy).starts_with(strategy.as_str()));
            assert!((EN.strategy_name)(strategy).starts_with(strategy.as_str()));
        }
    }

    #[test]
    fn a_refused_field_is_worded_in_french_from_its_params() {
        let error = FieldError::coded(
            "channels[key=web].queue",
            FieldCode::QueueUnknown,
            "queue 699 is not in [[queues]]",
        )
        .with("queue", "699");
        assert_eq!(EN.field_error(&error), "queue 699 is not in [[queues]]");
        assert_eq!(FR.field_error(&error), "la file 699 n'est pas définie");
        let plain = FieldError::new("body", "unknown variant `telepathy`");
        assert_eq!(FR.field_error(&plain), "unknown variant `telepathy`");
    }

    #[test]
    fn the_script_texts_are_json_that_cannot_end_their_block() {
        for t in [&EN, &FR] {
            let json = t.script_json();
            assert!(!json.contains('<'), "{json}");
            let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(parsed["say"]["saving"], t.script[0].1);
            let fields = parsed["fields"].as_object().unwrap();
            assert_eq!(
                fields.is_empty(),
                t.lang == "en",
                "English shows the messages"
            );
        }
        let fr: serde_json::Value = serde_json::from_str(&FR.script_json()).unwrap();
        assert_eq!(
            fr["fields"]["password_short"],
            "le mot de passe compte au moins {min} caractères"
        );
    }

    #[test]
    fn the_query_beats_the_cookie_which_beats_the_browser() {
        let lang = |p: &Parts| Lang::of(p).0.lang;
        assert_eq!(lang(&parts("/admin", &[])), "en");
        assert_eq!(
            lang(&parts("/admin", &[("accept-language", "fr-FR,fr;q=0.9")])),
            "fr"
        );
        assert_eq!(
            lang(&parts("/admin", &[("accept-language", "de,en;q=0.5")])),
            "en"
        );
        let cookie = [
            ("cookie", "a=b; frontdesk_console_lang=fr"),
            ("accept-language", "en"),
        ];
        assert_eq!(lang(&parts("/admin", &cookie)), "fr");
        assert_eq!(lang(&parts("/admin?lang=en", &cookie)), "en");
        assert_eq!(lang(&parts("/admin?lang=xx", &[])), "en");
    }
}
