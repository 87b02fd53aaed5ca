//! Channels as the engine uses them: config plus a parsed schedule, and
//! where a new chat goes at an instant.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use pbx_adapter::schedule::{Destination, Schedule};
use pbx_adapter::QueueExtension;

use crate::config::{parse_origin, ChannelConfig, ChannelMode, ClosedConfig};

/// Where a new chat of a channel goes now.
#[derive(Debug, Clone)]
pub enum Routed<'a> {
    Queue(QueueExtension),
    /// The chatbot menu (the channel's options).
    Menu,
    /// Closed, with this text and these alternatives.
    Closed(&'a ClosedConfig),
}

pub struct Channel {
    pub config: ChannelConfig,
    pub schedule: Schedule,
    /// Normalised allowed origins (`scheme://host[:port]`).
    pub origins: Vec<String>,
}

impl Channel {
    pub fn from_config(config: ChannelConfig) -> Result<Channel, String> {
        let schedule = Schedule::from_config(&config.schedule).map_err(|e| e.to_string())?;
        let origins = config
            .allowed_origins
            .iter()
            .map(|o| parse_origin(o))
            .collect::<Result<_, _>>()?;
        Ok(Channel {
            config,
            schedule,
            origins,
        })
    }

    /// Where a chat started at `at` goes, with the channel's own queue or
    /// menu put in for [`Destination::Open`].
    pub fn route_at(&self, at: DateTime<Utc>) -> Routed<'_> {
        match self.schedule.destination_at(at) {
            Destination::Open => match (&self.config.mode, &self.config.queue) {
                (ChannelMode::Live, Some(queue)) => Routed::Queue(queue.clone()),
                // Validated: a live channel routing to `open` has a queue.
                (ChannelMode::Live, None) | (ChannelMode::Chatbot, _) => Routed::Menu,
            },
            Destination::Queue(queue) => Routed::Queue(queue.clone()),
            Destination::Menu => Routed::Menu,
            Destination::Closed(name) => Routed::Closed(self.config.closure(name.as_deref())),
        }
    }

    /// The visitor's language if the channel speaks it, else the default.
    pub fn pick_language(&self, requested: &str) -> String {
        let primary = requested.split(['-', '_']).next().unwrap_or_default();
        let primary = primary.to_ascii_lowercase();
        if self.config.languages.contains(&primary) {
            primary
        } else {
            self.config.language.clone()
        }
    }

    /// Whether a browser at `origin` may use this channel.
    pub fn allows_origin(&self, origin: &str) -> bool {
        parse_origin(origin).is_ok_and(|o| self.origins.contains(&o))
    }
}

#[derive(Clone, Default)]
pub struct Channels {
    by_key: Arc<HashMap<String, Arc<Channel>>>,
}

impl Channels {
    pub fn new(configs: &[ChannelConfig]) -> Result<Channels, String> {
        let mut by_key = HashMap::new();
        for config in configs {
            let channel = Channel::from_config(config.clone())
                .map_err(|e| format!("channel {}: {e}", config.key))?;
            by_key.insert(config.key.to_string(), Arc::new(channel));
        }
        Ok(Channels {
            by_key: Arc::new(by_key),
        })
    }

    pub fn get(&self, key: &str) -> Option<Arc<Channel>> {
        self.by_key.get(key).cloned()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Channel>> {
        self.by_key.values()
    }

    /// Whether any channel allows `origin` (for CORS preflights, which do
    /// not say which channel they are for).
    pub fn any_allows_origin(&self, origin: &str) -> bool {
        self.by_key.values().any(|c| c.allows_origin(origin))
    }
}
