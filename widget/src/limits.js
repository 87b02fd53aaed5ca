// Default limits, in one place. The server's channel info (`limits`, see
// docs/visitor-api.md) overrides each of them; the defaults only apply while
// the channel is not loaded yet, or to a key the server does not send. The
// server enforces its own limits whatever the widget checks.

export const DEFAULT_LIMITS = {
  max_message_chars: 4000,
  max_name_chars: 100,
  max_email_chars: 254, // RFC 5321 path limit; not a channel setting
  max_file_bytes: 5242880,
  max_files_per_batch: 5,
};

/** The channel's limits over the defaults; a missing, zero or non-numeric value keeps the default. */
export function limitsOf(channel) {
  const given = (channel && channel.limits) || {};
  const out = {};
  for (const k in DEFAULT_LIMITS) out[k] = given[k] > 0 ? given[k] : DEFAULT_LIMITS[k];
  return out;
}
