//! The console in English and French.
//!
//! One catalog per language, as a struct, so a missing translation is a
//! compile error rather than a key shown on screen. The language is the
//! `?lang=` of the request (remembered in a cookie), else that cookie, else
//! the browser's `Accept-Language`, else English. Data (channel names,
//! visitor text, error messages from the shared validation) is shown as
//! it is.

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

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
    pub open_label: &'static str,
    pub holidays_label: &'static str,
    pub closed_text_label: &'static str,
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
    open_label: "Open when, one Asterisk time condition per line (09:00-18:00,mon-fri,*,*); empty: always open",
    holidays_label: "Holidays, one per line (2026-12-25 Christmas)",
    closed_text_label: "Out-of-hours text ({next_open} is replaced by the next opening)",
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
    open_label: "Ouvert quand, une condition horaire Asterisk par ligne (09:00-18:00,mon-fri,*,*) ; vide : toujours ouvert",
    holidays_label: "Jours fériés, un par ligne (2026-12-25 Noël)",
    closed_text_label: "Texte hors des heures d'ouverture ({next_open} est remplacé par la prochaine ouverture)",
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
};

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
