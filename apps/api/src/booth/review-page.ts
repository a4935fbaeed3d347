/**
 * The reviewer's page (GET /booth/review) and its script (GET /booth/review.js): plain HTML and JS, no framework.
 * It signs in with the station password (POST /api/v1/auth/token), lists GET /api/v1/reviews with each job's
 * original and options side by side (fetched with the token, shown as blob: URLs), posts the decisions and shows the
 * carousel. The token lives in sessionStorage only.
 */
export const REVIEW_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Booth review</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 1rem 2rem; background: #f6f6f6; color: #222; }
  header { display: flex; gap: 1rem; align-items: baseline; }
  .job { background: #fff; border-radius: 8px; padding: 1rem; margin: 1rem 0; box-shadow: 0 1px 3px #0002; }
  .row { display: flex; gap: 1rem; flex-wrap: wrap; align-items: flex-start; }
  figure { margin: 0; text-align: center; }
  figure img { max-width: 260px; max-height: 200px; display: block; border: 3px solid transparent; }
  figcaption { font-size: 0.85rem; margin-top: 0.3rem; }
  button { margin: 0.2rem; padding: 0.3rem 0.8rem; cursor: pointer; }
  #status { color: #06c; min-height: 1.2em; }
  .error { color: #b00; }
  #carousel li { margin: 0.2rem 0; }
</style>
</head>
<body>
<header><h1>Booth review</h1><span id="who"></span></header>
<form id="signin">
  <label>Station password <input id="password" name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit" id="signin-button">Sign in</button>
  <span id="signin-error" class="error"></span>
</form>
<main id="review" hidden>
  <p id="status" role="status"></p>
  <button id="refresh" type="button">Refresh</button>
  <button id="signout" type="button">Sign out</button>
  <section id="jobs"></section>
  <h2>Carousel</h2>
  <ol id="carousel" start="0"></ol>
</main>
<script src="/booth/review.js"></script>
</body>
</html>
`;

export const REVIEW_PAGE_JS = `'use strict';
(() => {
  const api = '/api/v1';
  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem('booth-token');
  const urls = [];

  function status(text, error) {
    $('status').textContent = text;
    $('status').className = error ? 'error' : '';
  }

  async function call(path, init = {}) {
    const headers = Object.assign({}, init.headers, { Authorization: 'Bearer ' + token });
    const res = await fetch(api + path, Object.assign({}, init, { headers }));
    if (res.status === 401) { signOut(); throw new Error('Signed out: sign in again'); }
    if (!res.ok) {
      let detail = res.status + ' ' + res.statusText;
      try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
      throw new Error(detail);
    }
    return res;
  }

  async function image(path, alt) {
    const img = document.createElement('img');
    img.alt = alt;
    try {
      const blob = await (await call(path.replace(api, ''))).blob();
      const url = URL.createObjectURL(blob);
      urls.push(url);
      img.src = url;
    } catch (e) {
      img.alt = alt + ' (unavailable: ' + e.message + ')';
    }
    return img;
  }

  function figure(img, caption) {
    const f = document.createElement('figure');
    const c = document.createElement('figcaption');
    c.textContent = caption;
    f.append(img, c);
    return f;
  }

  async function decide(jobId, decision, choice) {
    try {
      const body = decision === 'confirm' ? { decision, choice } : { decision };
      const res = await call('/jobs/' + jobId + '/review', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      const r = await res.json();
      const confirmed = 'Confirmed option ' + choice + ': carousel #' + r.carousel_index;
      const done = { confirm: confirmed, retry: 'Queued again', cancel: 'Cancelled' };
      status(done[decision]);
      await load();
    } catch (e) {
      status(e.message, true);
    }
  }

  async function load() {
    for (const u of urls.splice(0)) URL.revokeObjectURL(u);
    const list = await (await call('/reviews?page_size=20')).json();
    const jobs = $('jobs');
    jobs.replaceChildren();
    const ids = Object.keys(list.metadata);
    if (ids.length === 0) {
      const p = document.createElement('p');
      p.id = 'empty';
      p.textContent = 'Nothing to review.';
      jobs.append(p);
    }
    for (const id of ids) {
      const m = list.metadata[id];
      const card = document.createElement('article');
      card.className = 'job';
      card.dataset.jobId = id;
      const h = document.createElement('h3');
      const kind = m.animal_type + (m.broken_bone ? ', broken bone' : '');
      h.textContent = m.animal_name + ' (' + kind + ') of ' + m.first_name + ' ' + m.last_name;
      const row = document.createElement('div');
      row.className = 'row';
      row.append(figure(await image(list.originals[id], 'original'), 'Original'));
      for (const [n, url] of list.results[id].entries()) {
        const f = figure(await image(url, 'option ' + n), 'Option ' + n);
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'confirm';
        b.dataset.choice = String(n);
        b.textContent = 'Confirm option ' + n;
        b.addEventListener('click', () => decide(id, 'confirm', n));
        f.append(b);
        row.append(f);
      }
      const actions = document.createElement('div');
      for (const d of ['retry', 'cancel']) {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = d;
        b.textContent = d === 'retry' ? 'Retry (new options)' : 'Cancel';
        b.addEventListener('click', () => decide(id, d));
        actions.append(b);
      }
      card.append(h, row, actions);
      jobs.append(card);
    }
    const carousel = await (await fetch(api + '/carousel')).json();
    $('carousel').replaceChildren(...carousel.map((u, i) => {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = u;
      a.textContent = 'Pair ' + i + ' (ZIP)';
      li.append(a);
      return li;
    }));
  }

  function show() {
    $('signin').hidden = !!token;
    $('review').hidden = !token;
    if (token) load().catch((e) => status(e.message, true));
  }

  function signOut() {
    token = null;
    sessionStorage.removeItem('booth-token');
    show();
  }

  $('signin').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    $('signin-error').textContent = '';
    const res = await fetch(api + '/auth/token', { method: 'POST', body: new URLSearchParams({ password: $('password').value }) });
    if (!res.ok) {
      let detail = 'Sign-in failed';
      try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
      $('signin-error').textContent = detail;
      return;
    }
    token = (await res.json()).access_token;
    sessionStorage.setItem('booth-token', token);
    $('password').value = '';
    show();
  });
  $('refresh').addEventListener('click', () => load().catch((e) => status(e.message, true)));
  $('signout').addEventListener('click', signOut);
  show();
})();
`;
