// The dashboard's single page, embedded so the installed binary needs no asset files.
#pragma once

namespace firesight::watch {

inline constexpr const char* kDashboardPage = R"HTML(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>firesight</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:0;background:#16181c;color:#e8e8e8}
header{padding:10px 16px;background:#23262d;display:flex;gap:16px;align-items:baseline}
h1{font-size:20px;margin:0} #health{font-size:13px;color:#9a9}
main{padding:12px 16px} .sources{display:flex;flex-wrap:wrap;gap:12px}
.source{background:#23262d;border-radius:6px;padding:8px;width:420px}
.source img.live{width:100%;background:#000;min-height:120px;display:block}
.state{font-weight:bold;text-transform:uppercase}
.state-idle{color:#6c6}.state-suspected{color:#fc3}.state-alarm{color:#f44}.state-cleared{color:#6af}
table{border-collapse:collapse;width:100%;margin-top:8px;font-size:14px}
td,th{border-bottom:1px solid #333;padding:4px 6px;text-align:left} td img{height:48px}
button.fb{margin-right:4px;font-size:12px} .verdict{font-size:12px;color:#fc3} #feedback-status{font-size:13px;color:#9a9}
</style></head><body>
<header><h1>firesight</h1><span id="health">connecting...</span></header>
<main>
<div class="sources" id="sources"></div>
<h2>Events</h2>
<div id="feedback-status"></div>
<table><thead><tr><th>#</th><th>time</th><th>source</th><th>event</th><th>class</th><th>peak</th><th>frame</th><th>snapshot</th><th>feedback</th></tr></thead>
<tbody id="events"></tbody></table>
</main>
<script>
const params = new URLSearchParams(location.search);
const token = params.get('token') || '';
const pollLive = params.get('live') === 'poll';
function withToken(u, extra) {
  const q = [];
  if (token) q.push('token=' + encodeURIComponent(token));
  if (extra) q.push(extra);
  return q.length ? u + '?' + q.join('&') : u;
}
function esc(s) { return String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c])); }
const cards = {};
function card(s) {
  if (cards[s.name]) return cards[s.name];
  const div = document.createElement('div');
  div.className = 'source';
  div.id = 'source-' + s.name;
  div.innerHTML = '<div><b>' + esc(s.name) + '</b> <span class="state"></span> <small class="info"></small></div>' +
                  '<img class="live" alt="live view of ' + esc(s.name) + '">';
  const img = div.querySelector('img');
  img.addEventListener('load', () => { img.dataset.loaded = '1'; });
  // MJPEG for people; a polled JPEG (?live=poll) for clients that cannot hold a stream open.
  if (pollLive) {
    const next = () => { img.src = withToken('/live/' + encodeURIComponent(s.name) + '.jpg', 't=' + Date.now()); };
    img.addEventListener('load', () => setTimeout(next, 500));
    img.addEventListener('error', () => setTimeout(next, 1000));
    next();
  } else {
    img.src = withToken('/stream/' + encodeURIComponent(s.name));
  }
  document.getElementById('sources').appendChild(div);
  cards[s.name] = div;
  return div;
}
// Events with a snapshot can be labelled: the verdict files the snapshot as training data.
function feedbackCell(e) {
  if (!e.snapshot || e.kind !== 'state') return '';
  const v = e.verdict ? '<span class="verdict">' + (e.verdict === 'false_alarm' ? 'false alarm' : 'confirmed') + '</span> ' : '';
  return v + '<button class="fb" data-id="' + e.id + '" data-verdict="false_alarm">false alarm</button>' +
         '<button class="fb" data-id="' + e.id + '" data-verdict="confirmed">confirmed</button>';
}
document.getElementById('events').addEventListener('click', async ev => {
  const b = ev.target.closest('button.fb');
  if (!b) return;
  b.disabled = true;
  const status = document.getElementById('feedback-status');
  try {
    const r = await fetch(withToken('/api/events/' + b.dataset.id + '/feedback'),
                          {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({verdict: b.dataset.verdict})});
    const j = await r.json().catch(() => ({}));
    status.textContent = 'event ' + b.dataset.id + ': ' + (r.ok ? 'filed under ' + j.label : 'not saved: ' + (j.error || r.status));
  } catch (err) {
    status.textContent = 'event ' + b.dataset.id + ': not saved: ' + err;
  }
  refresh();
});
async function refresh() {
  try {
    const st = await (await fetch(withToken('/api/state'))).json();
    for (const s of st.sources) {
      const c = card(s);
      const el = c.querySelector('.state');
      el.textContent = s.state;
      el.className = 'state state-' + s.state;
      const top = st.classes.map((n, i) => [n, s.probabilities[i] || 0]).sort((a, b) => b[1] - a[1]).slice(0, 2)
                    .map(p => p[0] + ' ' + (100 * p[1]).toFixed(0) + '%').join(', ');
      c.querySelector('.info').textContent = (s.up ? 'up' : (s.ended ? 'ended' : 'DOWN')) + ', ' + s.frames + ' frames' + (top ? ', ' + top : '');
    }
    const events = await (await fetch(withToken('/api/events', 'limit=50'))).json();
    document.getElementById('events').innerHTML = events.map(e =>
      '<tr class="event" id="event-' + e.id + '"><td>' + e.id + '</td><td>' + esc(new Date(e.time_ms).toLocaleString()) +
      '</td><td>' + esc(e.source) + '</td><td>' + esc(e.kind === 'state' ? e.from + ' \u2192 ' + e.to : e.kind) +
      (e.detail ? ' <small>' + esc(e.detail) + '</small>' : '') + '</td><td>' + esc(e.class) + '</td><td>' +
      (e.kind === 'state' ? (100 * e.peak).toFixed(0) + '%' : '') + '</td><td>' + (e.frame >= 0 ? e.frame : '') + '</td><td>' +
      (e.snapshot ? '<a href="' + withToken('/snapshots/' + e.snapshot) + '"><img class="snap" src="' + withToken('/snapshots/' + e.snapshot) + '"></a>' : '') +
      '</td><td>' + feedbackCell(e) + '</td></tr>').join('');
    const h = await fetch(withToken('/healthz'));
    document.getElementById('health').textContent = h.ok ? 'healthy' : 'degraded';
  } catch (err) {
    document.getElementById('health').textContent = 'no connection: ' + err;
  }
}
refresh();
setInterval(refresh, 1000);
</script>
</body></html>
)HTML";

}  // namespace firesight::watch
