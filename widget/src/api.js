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
    /**
     * Uploads one file (multipart part `file`) with XHR, for its upload
     * progress events. Returns { promise, abort }; abort rejects with `aborted`.
     */
    upload(id, token, file, batchId, clientId, onProgress) {
      const x = new XMLHttpRequest();
      const promise = new Promise((resolve, reject) => {
        const q = '?batch_id=' + encodeURIComponent(batchId) + '&client_id=' + encodeURIComponent(clientId);
        x.open('POST', base + '/api/v1' + conv(id) + '/files' + q);
        x.setRequestHeader('Authorization', 'Bearer ' + token);
        x.setRequestHeader('Accept', 'application/json');
        x.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
        x.onload = () => {
          let data = null;
          try {
            data = JSON.parse(x.responseText);
          } catch (e) {
            data = null;
          }
          if (x.status >= 200 && x.status < 300) resolve(data);
          else reject(new ApiError(x.status, (data && data.error) || 'http_' + x.status, data));
        };
        x.onerror = () => reject(new ApiError(0, 'network'));
        x.onabort = () => reject(new ApiError(0, 'aborted'));
        const form = new FormData();
        form.append('file', file, file.name);
        x.send(form);
      });
      return { promise, abort: () => x.abort() };
    },
    /** A file of the conversation as a Blob (the token cannot go in a plain link). */
    async download(id, token, fileId) {
      let res;
      try {
        res = await fetch(base + '/api/v1' + conv(id) + '/files/' + encodeURIComponent(fileId), {
          headers: { Authorization: 'Bearer ' + token },
          credentials: 'omit',
          cache: 'no-store',
        });
      } catch (e) {
        throw new ApiError(0, 'network');
      }
      if (!res.ok) throw new ApiError(res.status, res.status === 401 ? 'unauthorized' : 'http_' + res.status);
      return res.blob();
    },
  };
}
