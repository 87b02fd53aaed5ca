// Thin client for the visitor API v1 (docs/visitor-api.md). Every failure
// becomes an ApiError with the server's stable `error` code, or `network`
// when the gateway could not be reached, so the UI maps codes, not texts.

export class ApiError extends Error {
  constructor(status, code, body) {
    super(code);
    this.status = status;
    this.code = code;
    this.body = body || {};
  }
}

export function createApi(base) {
  async function call(method, path, body, token) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers.Authorization = 'Bearer ' + token;
    let res;
    try {
      res = await fetch(base + '/api/v1' + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'omit',
        cache: 'no-store',
      });
    } catch (e) {
      throw new ApiError(0, 'network');
    }
    let data = null;
    try {
      data = await res.json();
    } catch (e) {
      data = null;
    }
    if (!res.ok) throw new ApiError(res.status, (data && data.error) || 'http_' + res.status, data);
    return data;
  }
  const conv = (id) => '/conversations/' + encodeURIComponent(id);
  return {
    channel: (key) => call('GET', '/channels/' + encodeURIComponent(key)),
    start: (key, body) => call('POST', '/channels/' + encodeURIComponent(key) + '/conversations', body),
    get: (id, token) => call('GET', conv(id), undefined, token),
    choice: (id, token, optionId) => call('POST', conv(id) + '/choice', { option_id: optionId }, token),
    send: (id, token, clientId, text) => call('POST', conv(id) + '/messages', { client_id: clientId, body: text }, token),
    close: (id, token) => call('POST', conv(id) + '/close', {}, token),
    eventsUrl: (id) => base.replace(/^http/, 'ws') + '/api/v1' + conv(id) + '/events',
  };
}
