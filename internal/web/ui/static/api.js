// The node's HTTP API (docs/api.md) and its event stream. Requests carry the session cookie set by
// POST /api/login; a 401 on anything else means the session ended, and the app goes back to sign-in.

// ApiError is a failed request: the HTTP status and the API's {"error"} text.
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

let unauthorized = () => {};

// onUnauthorized sets what happens when the node answers 401 (the session is gone).
export function onUnauthorized(f) {
  unauthorized = f;
}

// api calls the API and returns the decoded JSON answer (null for 204, text for non-JSON answers).
export async function api(method, path, body) {
  const opts = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let r;
  try {
    r = await fetch(path, opts);
  } catch (e) {
    throw new ApiError(0, 'The node cannot be reached: is it running?');
  }
  if (!r.ok) {
    let msg = '';
    try {
      msg = (await r.json()).error || '';
    } catch (e) {
      // not JSON: say what the status means
    }
    if (!msg) msg = `The node answered ${r.status} ${r.statusText}`.trim();
    const err = new ApiError(r.status, msg);
    if (r.status === 401 && path !== '/api/login') unauthorized(err);
    throw err;
  }
  if (r.status === 204) return null;
  const ct = r.headers.get('Content-Type') || '';
  return ct.includes('json') ? r.json() : r.text();
}

// upload POSTs a FormData body (multipart/form-data) with XMLHttpRequest, whose upload events give
// the progress that fetch does not: onProgress(loaded, total) as the bytes go. It returns the decoded
// JSON answer and fails like api().
export function upload(path, form, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', path);
    x.withCredentials = true;
    x.setRequestHeader('Accept', 'application/json');
    x.responseType = 'text';
    x.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.lengthComputable ? e.total : 0));
    x.addEventListener('error', () => reject(new ApiError(0, 'The node cannot be reached: is it running?')));
    x.addEventListener('load', () => {
      let data = null;
      try {
        data = JSON.parse(x.responseText || 'null');
      } catch (e) {
        // not JSON
      }
      if (x.status >= 200 && x.status < 300) {
        onProgress(1, 1);
        resolve(data);
        return;
      }
      const err = new ApiError(x.status, (data && data.error) || `The node answered ${x.status} ${x.statusText}`.trim());
      if (x.status === 401) unauthorized(err);
      reject(err);
    });
    x.send(form);
  });
}

// path joins URL path segments, escaping each.
export function path(...segs) {
  return '/' + segs.map((s) => encodeURIComponent(String(s))).join('/');
}

// query renders the non-empty parameters of params as a query string ("" or "?a=b&…").
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

// Events is the node's server-sent event stream. It reconnects after an error (first checking the
// session, so that a 401 leads back to sign-in) and reports each (re)connection with the "hello"
// event: events are not replayed, so a listener reloads what it shows on a reconnect.
export class Events {
  constructor(handlers) {
    this.handlers = handlers; // name → function(data)
    this.es = null;
    this.retry = null;
    this.closed = true;
  }

  start() {
    this.closed = false;
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const es = new EventSource('/api/events');
    this.es = es;
    for (const name of Object.keys(this.handlers)) {
      es.addEventListener(name, (ev) => {
        let data = {};
        try {
          data = JSON.parse(ev.data || '{}');
        } catch (e) {
          return; // a malformed event is dropped
        }
        this.handlers[name](data);
      });
    }
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED || this.closed) return; // the browser retries by itself
      es.close();
      // A refused stream: find out whether the session ended (api() handles the 401), else retry.
      api('GET', '/api/me').then(
        () => this.schedule(),
        (e) => {
          if (e.status !== 401) this.schedule();
        },
      );
    };
  }

  schedule() {
    clearTimeout(this.retry);
    this.retry = setTimeout(() => this.connect(), 2000);
  }

  stop() {
    this.closed = true;
    clearTimeout(this.retry);
    if (this.es) this.es.close();
    this.es = null;
  }
}
