// Texts and locale-aware formatting (spec L1).
// English and French ship in the bundle (a few hundred bytes each); the
// language comes from the script's data-lang, the page's <html lang>, or the
// channel's default, in that order, limited to what the channel offers.

const en = {
  open: 'Open chat',
  closeWidget: 'Close chat',
  minimize: 'Minimize chat',
  name: 'Name',
  email: 'Email',
  start: 'Start chat',
  send: 'Send',
  attach: 'Attach file',
  remove: 'Remove',
  cancelUpload: 'Cancel upload',
  download: 'Download',
  retry: 'Retry',
  end: 'End chat',
  yes: 'Yes',
  no: 'No',
  message: 'Message',
  messages: 'Messages',
  intro: 'Hello! Tell us who you are and we will connect you.',
  empty: 'The fields cannot be empty. Please enter your name and e-mail.',
  invalidEmail: 'This e-mail address does not look valid. Please check it.',
  tooLong: 'This is too long (at most {n} characters).',
  closedTitle: 'We are closed right now',
  closedDefault: 'You reached us outside our opening hours.',
  nextOpen: 'Live chat opens again {when}.',
  otherWays: 'Other ways to reach us',
  chooseTopic: 'What can we help you with?',
  waiting: 'Waiting for an agent…',
  position: 'You are number {n} in the queue.',
  positionFirst: 'You are next in the queue.',
  waitHint: 'You can already describe your question below.',
  joined: '{name} joined the chat.',
  left: '{name} left the chat. You are back in the queue.',
  typing: '{name} is typing…',
  agent: 'Agent',
  you: 'You',
  sending: 'Sending…',
  sent: 'Sent',
  delivered: 'Delivered',
  read: 'Read',
  failed: 'Not sent',
  confirmEnd: 'End this chat?',
  ended: 'This chat has ended.',
  endedByAgent: 'The agent ended this chat.',
  startNew: 'Start chat',
  errConn: 'Connection lost — reconnecting… Your messages are kept; you can keep typing.',
  errOffline: 'Cannot reach the chat service. Check your internet connection and try again.',
  errSend: 'Your message was not sent. Check your connection, then press Retry.',
  errRetry: 'Some messages were not sent. Press Retry next to each one to send it.',
  errRate: 'Too many attempts. Please wait {n} seconds and try again.',
  errOrigin: 'Chat is not available on this website. Please contact us another way.',
  errAuth: 'Your chat session has expired. Please start a new chat.',
  errServer: 'Something went wrong on our side. Please try again in a moment.',
  errEnded: 'This chat has already ended. Start a new chat to continue.',
  errChannel: 'This chat is not configured. Please contact the website owner.',
  loading: 'Loading…',
  unread: '{n} new',
  errEmptyMessage: 'An empty message cannot be sent. Type something first.',
  newMessage: 'New message from {name}: {text}',
  filesToSend: 'Files to send',
  tooManyFiles: 'Only {n} files can be sent at once. Remove some, then send the others separately.',
  fileTooBig: '“{name}” is too large: each file can be at most {size}.',
  fileType: '“{name}” cannot be sent: this type of file is not allowed.',
  errFile: '“{name}” was not sent. Check your connection, then press Retry.',
  fileSent: '“{name}” sent.',
  errQueueFull: 'All our advisors are busy and the queue is full. Please try again in a few minutes.',
  errTooManyWaiting: 'You already have a chat waiting for an advisor. Please continue there.',
  filesFull: 'This chat cannot take more files. Send the rest by e-mail or in a new chat.',
  storageFull: '“{name}” cannot be received right now. Please try again later.',
  previewNote: 'This is a preview: nothing is sent.',
};

const fr = {
  open: 'Ouvrir le chat',
  closeWidget: 'Fermer le chat',
  minimize: 'Réduire le chat',
  name: 'Nom',
  email: 'E-mail',
  start: 'Démarrer le chat',
  send: 'Envoyer',
  attach: 'Joindre un fichier',
  remove: 'Retirer',
  cancelUpload: "Annuler l'envoi",
  download: 'Télécharger',
  retry: 'Réessayer',
  end: 'Terminer le chat',
  yes: 'Oui',
  no: 'Non',
  message: 'Message',
  messages: 'Messages',
  intro: 'Bonjour ! Présentez-vous et nous vous mettons en relation.',
  empty: 'Les champs ne peuvent pas être vides. Saisissez votre nom et votre e-mail.',
  invalidEmail: "Cette adresse e-mail ne semble pas valide. Vérifiez-la.",
  tooLong: 'Ce texte est trop long ({n} caractères au maximum).',
  closedTitle: 'Nous sommes fermés pour le moment',
  closedDefault: "Vous nous contactez en dehors de nos heures d'ouverture.",
  nextOpen: 'Le chat rouvre {when}.',
  otherWays: 'Autres moyens de nous joindre',
  chooseTopic: 'Comment pouvons-nous vous aider ?',
  waiting: "En attente d'un conseiller…",
  position: "Vous êtes en position {n} dans la file d'attente.",
  positionFirst: "Vous êtes le prochain dans la file d'attente.",
  waitHint: 'Vous pouvez déjà décrire votre demande ci-dessous.',
  joined: '{name} a rejoint la conversation.',
  left: "{name} a quitté la conversation. Vous êtes de nouveau dans la file d'attente.",
  typing: '{name} écrit…',
  agent: 'Conseiller',
  you: 'Vous',
  sending: 'Envoi…',
  sent: 'Envoyé',
  delivered: 'Distribué',
  read: 'Lu',
  failed: 'Non envoyé',
  confirmEnd: 'Terminer cette conversation ?',
  ended: 'Cette conversation est terminée.',
  endedByAgent: 'Le conseiller a terminé cette conversation.',
  startNew: 'Démarrer le chat',
  errConn: 'Connexion perdue — reconnexion… Vos messages sont conservés ; vous pouvez continuer à écrire.',
  errOffline: 'Impossible de joindre le service de chat. Vérifiez votre connexion internet et réessayez.',
  errSend: "Votre message n'a pas été envoyé. Vérifiez votre connexion, puis appuyez sur Réessayer.",
  errRetry: "Certains messages n'ont pas été envoyés. Appuyez sur Réessayer à côté de chacun pour l'envoyer.",
  errRate: 'Trop de tentatives. Patientez {n} secondes et réessayez.',
  errOrigin: "Le chat n'est pas disponible sur ce site. Contactez-nous autrement.",
  errAuth: 'Votre session de chat a expiré. Démarrez une nouvelle conversation.',
  errServer: 'Un problème est survenu de notre côté. Réessayez dans un instant.',
  errEnded: 'Cette conversation est déjà terminée. Démarrez-en une nouvelle pour continuer.',
  errChannel: "Ce chat n'est pas configuré. Contactez le propriétaire du site.",
  loading: 'Chargement…',
  unread: '{n} nouveau(x)',
  errEmptyMessage: 'Un message vide ne peut pas être envoyé. Écrivez quelque chose.',
  newMessage: 'Nouveau message de {name} : {text}',
  filesToSend: 'Fichiers à envoyer',
  tooManyFiles: 'Vous ne pouvez envoyer que {n} fichiers à la fois. Retirez-en, puis envoyez les autres séparément.',
  fileTooBig: '« {name} » est trop volumineux : {size} au maximum par fichier.',
  fileType: "« {name} » ne peut pas être envoyé : ce type de fichier n'est pas autorisé.",
  errFile: "« {name} » n'a pas été envoyé. Vérifiez votre connexion, puis appuyez sur Réessayer.",
  fileSent: '« {name} » envoyé.',
  errQueueFull: "Tous nos conseillers sont occupés et la file d'attente est pleine. Réessayez dans quelques minutes.",
  errTooManyWaiting: 'Vous avez déjà une conversation en attente d’un conseiller. Continuez-la.',
  filesFull: "Cette conversation ne peut plus recevoir de fichiers. Envoyez les autres par e-mail ou dans une nouvelle conversation.",
  storageFull: '« {name} » ne peut pas être reçu pour le moment. Réessayez plus tard.',
  previewNote: "Ceci est un aperçu : rien n'est envoyé.",
};

const dicts = { en, fr };

/** Base language ("fr-CA" -> "fr") if we ship it, else null. */
export function supported(tag) {
  const base = String(tag || '').toLowerCase().split(/[-_]/)[0];
  return dicts[base] ? base : null;
}

/**
 * Picks the language: explicit data-lang, then the page's <html lang>, then
 * the channel's default; the page choice is kept only if the channel offers it.
 */
export function pickLanguage(explicit, pageLang, channel) {
  const offered = channel && Array.isArray(channel.languages) ? channel.languages.map(supported) : null;
  for (const cand of [explicit, pageLang]) {
    const l = supported(cand);
    if (l && (!offered || offered.includes(l))) return l;
  }
  return supported(channel && channel.language) || supported(pageLang) || 'en';
}

/** Returns a translator for `lang`: t('key', {n: 2}). */
export function translator(lang) {
  const d = dicts[lang] || en;
  return (key, vars) => {
    let s = d[key] || en[key] || key;
    if (vars) for (const k in vars) s = s.split('{' + k + '}').join(String(vars[k]));
    return s;
  };
}

/** "Thursday 26 November at 09:00" in the visitor's own time zone. */
export function formatWhen(lang, iso) {
  const d = new Date(iso);
  if (isNaN(d)) return '';
  return new Intl.DateTimeFormat(lang, {
    weekday: 'long', day: 'numeric', month: 'long', hour: '2-digit', minute: '2-digit', timeZoneName: 'short',
  }).format(d);
}

/** Short clock time for a message. */
export function formatTime(lang, iso) {
  const d = iso ? new Date(iso) : new Date();
  if (isNaN(d)) return '';
  const today = d.toDateString() === new Date().toDateString();
  const opts = today ? { hour: '2-digit', minute: '2-digit' } : { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' };
  return new Intl.DateTimeFormat(lang, opts).format(d);
}

/** "5 MB", "12.5 KB" ("5 Mo", "12,5 Ko" in French). */
export function formatSize(lang, bytes) {
  const units = lang === 'fr' ? ['o', 'Ko', 'Mo', 'Go'] : ['B', 'KB', 'MB', 'GB'];
  let n = Number(bytes) || 0;
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return new Intl.NumberFormat(lang, { maximumFractionDigits: n < 10 && i ? 1 : 0 }).format(n) + ' ' + units[i];
}
