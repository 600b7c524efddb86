// Pixel Couplet Gen — the page's behaviour. Plain browser JavaScript, no build
// step, no dependencies, nothing fetched from outside this origin.
//
// The flow is the API's own: POST /v1/couplets (202 + job id), then long-poll
// GET /v1/jobs/{id}?wait=10 until the job is final, then show the text and the
// PNG from /v1/jobs/{id}/image.png?candidate=N (a job asked for several ranked
// couplets keeps them all; 换一副 flips through them, N is the 0-based index
// the API takes). Validation is the server's job: the page
// only shows `error.field`'s message next to that field, so there is one
// definition of a valid request (common/src/request.rs).
'use strict';

(() => {
  const HISTORY_KEY = 'pixel-couplet.history.v1';
  const LAYOUT_KEY = 'pixel-couplet.layout';
  const API_KEY_KEY = 'pixel-couplet.api-key'; // sessionStorage: this tab only
  const HISTORY_MAX = 10;
  const WAIT_S = 10; // long-poll window per request (the API allows up to 30)
  const GIVE_UP_MS = 5 * 60 * 1000;
  const MAX_POLL_RETRIES = 6;
  const IMAGE_SCALE = 4;
  const U64_MAX = 18446744073709551615n;
  const FIELDS = ['theme', 'style', 'length', 'upper', 'head', 'candidates', 'seed'];
  const RADIO_FIELDS = ['style', 'length', 'candidates'];
  const STYLE_NAMES = {
    classic: '经典 Classic',
    festive: '喜庆 Festive',
    literary: '文雅 Literary',
    business: '商务 Business',
    family: '家庭 Family',
  };

  const $ = (id) => document.getElementById(id);
  const form = $('gen-form');
  const submitBtn = $('submit');
  const themeInput = $('theme');
  const upperInput = $('upper');
  const headInput = $('head');
  const seedInput = $('seed');
  const apiKeyInput = $('api-key');
  const lengthField = $('length-field');
  const lengthHint = $('length-hint');
  const formError = $('error-form');
  const statusEl = $('status');
  const statusText = $('status-text');
  const elapsedEl = $('status-elapsed');
  const resultSection = $('result');
  const resultImage = $('result-image');
  const imageNote = $('image-note');
  const downloadLink = $('download');
  const copyBtn = $('copy');
  const copyNote = $('copy-note');
  const candidateNav = $('candidate-nav');
  const nextCandidateBtn = $('next-candidate');
  const candidateCounter = $('candidate-counter');
  const historyList = $('history');
  const historyEmpty = $('history-empty');
  const layoutButtons = Array.from(document.querySelectorAll('[data-layout]'));
  const steps = Array.from(document.querySelectorAll('.steps li'));

  const state = {
    run: 0, // bumped per submission; an old poll loop stops when it sees a newer one
    busy: false,
    shown: null, // {id, upper, lower, hengpi, style, theme, at, candidates?: [{upper, lower, hengpi}]}
    candidate: 0, // index into shown.candidates of the couplet on screen
    layout: 'door',
    elapsedTimer: null,
    elapsedTick: null,
    countdownTimer: null,
    objectUrl: null,
  };

  // ---------- small helpers ----------

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  function storageGet(store, key) {
    try { return store.getItem(key); } catch (_) { return null; }
  }
  function storageSet(store, key, value) {
    try {
      if (value === null || value === '') store.removeItem(key);
      else store.setItem(key, value);
    } catch (_) { /* private mode or full: the page still works without it */ }
  }

  // Builds an element with bilingual text: zh, then an English span.
  function bilingual(zh, en) {
    const frag = document.createDocumentFragment();
    frag.append(zh);
    if (en) {
      frag.append(' ');
      const span = document.createElement('span');
      span.lang = 'en';
      span.textContent = en;
      frag.append(span);
    }
    return frag;
  }

  function setChildren(el, ...nodes) {
    el.replaceChildren(...nodes);
  }

  function retryAfterSeconds(res) {
    const raw = res && res.headers.get('Retry-After');
    if (!raw) return null;
    const n = Number.parseInt(raw, 10);
    if (Number.isFinite(n) && n >= 0) return n;
    const date = Date.parse(raw);
    return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
  }

  function authHeaders() {
    const key = apiKeyInput.value.trim();
    return key ? { Authorization: `Bearer ${key}` } : {};
  }

  // fetch + JSON body when there is one. Network failures reject.
  async function api(path, options = {}) {
    const res = await fetch(path, {
      ...options,
      headers: { Accept: 'application/json', ...authHeaders(), ...(options.headers || {}) },
      cache: 'no-store',
    });
    let body = null;
    if ((res.headers.get('Content-Type') || '').includes('json')) {
      try { body = await res.json(); } catch (_) { body = null; }
    }
    return { res, body };
  }

  // ---------- error messages ----------

  // Plain-words messages per `error.type` (and field, where it matters).
  function describeError(type, field, serverMessage) {
    const detail = serverMessage ? ` (${serverMessage})` : '';
    switch (type) {
      case 'missing_input':
        return ['请填写主题或上联。', 'Enter a theme or an upper line.'];
      case 'non_cjk_input':
        return field === 'upper'
          ? ['上联只能用汉字和 ，、；', 'The upper line may only contain Chinese characters and ，、；.']
          : ['主题只能用汉字，可以用空格分开。', 'Please use Chinese characters only (spaces are fine), e.g. 龙年 吉祥.'];
      case 'input_too_long':
        return field === 'upper'
          ? ['上联最多 24 个字。', 'The upper line can be at most 24 characters long.']
          : ['主题最多 4 个不同的汉字。', 'Use at most 4 different Chinese characters.'];
      case 'input_too_short':
        return ['上联至少要 4 个字。', 'The upper line needs at least 4 characters.'];
      case 'bad_punctuation':
        return ['标点 ，、； 只能放在两个字之间。', 'Punctuation ，、； may only stand between two characters.'];
      case 'unknown_style':
        return ['请从五种风格中选一种。', 'Pick one of the five styles.'];
      case 'unsupported_length':
        return ['字数只能是 5、7 或 9。', 'The length must be 5, 7 or 9.'];
      case 'invalid_head':
        return ['藏头要两个不同的汉字；给了上联时，上联须以第一个字开头、不含第二个字。',
          `The hidden head needs two different Chinese characters; with an upper line, it must start with the first and not contain the second${detail}.`];
      case 'invalid_candidates':
        return ['只能要 1 到 5 副。', 'Ask for 1 to 5 couplets.'];
      case 'invalid_seed':
        return ['种子必须是 0 到 18446744073709551615 之间的整数。', 'The seed must be a whole number from 0 to 18446744073709551615.'];
      case 'unauthorized':
        return ['需要有效的 API 密钥，请在“更多”里填写。', 'A valid API key is needed: enter it under “More options”.'];
      case 'not_found':
        return ['找不到这个任务，可能已过期。', 'That job was not found; it may have expired.'];
      case 'unavailable':
        return ['服务暂时不可用，请稍后再试。', 'The service is temporarily unavailable. Please try again later.'];
      case 'overloaded':
        return ['服务繁忙，请稍后再试。', 'The service is busy right now. Please try again shortly.'];
      case 'network':
        return ['连不上服务器，请检查网络后再试。', 'Cannot reach the server. Check your connection and try again.'];
      default:
        return ['请求未被接受。', `The request was refused${detail}.`];
    }
  }

  function clearErrors() {
    for (const field of FIELDS) {
      const el = $(`error-${field}`);
      if (el) el.replaceChildren();
    }
    for (const input of form.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
    formError.replaceChildren();
    stopCountdown();
  }

  function fieldInput(field) {
    if (RADIO_FIELDS.includes(field)) {
      return form.querySelector(`input[name="${field}"]:checked`) || form.querySelector(`input[name="${field}"]`);
    }
    return $(field);
  }

  function showFieldError(field, type, message) {
    const target = $(`error-${field}`);
    const [zh, en] = describeError(type, field, message);
    if (!target) {
      setChildren(formError, bilingual(zh, en));
      return;
    }
    if (field === 'seed') $('advanced').open = true;
    setChildren(target, bilingual(zh, en));
    const input = fieldInput(field);
    if (input) {
      if (input.type !== 'radio') input.setAttribute('aria-invalid', 'true');
      input.focus();
    }
  }

  // ---------- countdown (429 / 503 with Retry-After) ----------

  function stopCountdown() {
    if (state.countdownTimer) clearInterval(state.countdownTimer);
    state.countdownTimer = null;
    if (!state.busy) submitBtn.disabled = false;
  }

  function startCountdown(seconds, zh, en) {
    stopCountdown();
    const until = Date.now() + seconds * 1000;
    // Screen readers hear the alert once, with the starting number; the ticking
    // numbers are for the eyes only (aria-hidden), so they are not re-announced.
    const spoken = document.createElement('span');
    spoken.className = 'visually-hidden';
    spoken.textContent = `请在 ${seconds} 秒后再试。Try again in ${seconds} s.`;
    const count = document.createElement('strong');
    count.className = 'countdown';
    count.dataset.testid = 'countdown';
    const countEn = document.createElement('strong');
    countEn.className = 'countdown';
    const shown = document.createElement('span');
    shown.setAttribute('aria-hidden', 'true');
    const waitEn = document.createElement('span');
    waitEn.lang = 'en';
    waitEn.append('Try again in ', countEn, ' s.');
    shown.append('请在 ', count, ' 秒后再试。 ', waitEn);
    const line = document.createElement('span');
    line.append(bilingual(zh, en), ' ', spoken, shown);
    setChildren(formError, line);
    submitBtn.disabled = true;
    const tick = () => {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      count.textContent = String(left);
      countEn.textContent = String(left);
      if (left <= 0) {
        clearInterval(state.countdownTimer);
        state.countdownTimer = null;
        formError.replaceChildren();
        if (!state.busy) submitBtn.disabled = false;
        setStatus('idle', '可以再试了。', 'You can try again now.');
      }
    };
    tick();
    state.countdownTimer = setInterval(tick, 250);
  }

  // ---------- status + progress ----------

  function setStatus(phase, zh, en) {
    statusEl.dataset.phase = phase;
    setChildren(statusText, bilingual(zh, en));
    const order = { queued: 0, running: 1, succeeded: 2 };
    const at = phase in order ? order[phase] : -1;
    steps.forEach((li, i) => {
      li.classList.toggle('done', at > i || (at === 2 && i === 2));
      li.classList.toggle('active', at === i && at < 2);
    });
  }

  function startElapsed() {
    stopElapsed();
    const t0 = performance.now();
    const tick = () => { elapsedEl.textContent = `${((performance.now() - t0) / 1000).toFixed(1)} s`; };
    tick();
    state.elapsedTick = tick;
    state.elapsedTimer = setInterval(tick, 100);
  }

  // Stops the clock, showing the exact final time.
  function stopElapsed() {
    if (state.elapsedTimer) {
      clearInterval(state.elapsedTimer);
      state.elapsedTick();
    }
    state.elapsedTimer = null;
  }

  function setBusy(busy) {
    state.busy = busy;
    submitBtn.disabled = busy || Boolean(state.countdownTimer);
    submitBtn.setAttribute('aria-busy', String(busy));
  }

  function showJobStatus(job) {
    if (job.status === 'queued') {
      const pos = Number.isInteger(job.queue_position) ? job.queue_position : null;
      if (pos !== null && pos > 0) setStatus('queued', `排队中，前面还有 ${pos} 个…`, `Queued, ${pos} ahead of you…`);
      else setStatus('queued', '排队中…', 'Queued…');
    } else if (job.status === 'running') {
      setStatus('running', '正在写春联…', 'Writing your couplet…');
    }
  }

  // ---------- submit + poll ----------

  function readRequest() {
    const theme = themeInput.value.trim();
    const upper = upperInput.value.trim();
    const style = (form.querySelector('input[name="style"]:checked') || {}).value || 'classic';
    const length = Number((form.querySelector('input[name="length"]:checked') || {}).value || 7);
    const seed = seedInput.value.trim();
    const head = headInput.value.trim();
    const candidates = Number((form.querySelector('input[name="candidates"]:checked') || {}).value || 1);
    const body = { theme: theme || null, style, upper: upper || null, candidates };
    if (head) body.head = head;
    // With an upper line the length is the line's own; sending one too would be refused.
    if (!upper) body.length = length;
    let json = JSON.stringify(body);
    if (seed) {
      // u64 seeds do not fit a JS number: splice the digits into the JSON text.
      if (!/^\d{1,20}$/.test(seed) || BigInt(seed) > U64_MAX) return { error: 'invalid_seed' };
      json = `${json.slice(0, -1)},"seed":${BigInt(seed).toString()}}`;
    }
    return { json, theme };
  }

  async function onSubmit(event) {
    event.preventDefault();
    if (state.busy || state.countdownTimer) return;
    clearErrors();
    const req = readRequest();
    if (req.error) {
      showFieldError('seed', req.error);
      setStatus('error', '请修改标出的内容。', 'Please fix the marked field.');
      return;
    }
    const run = ++state.run;
    setBusy(true);
    setStatus('submitting', '提交中…', 'Submitting…');
    startElapsed();
    try {
      let res;
      let body;
      try {
        ({ res, body } = await api('/v1/couplets', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: req.json,
        }));
      } catch (_) {
        failSubmission('network');
        return;
      }
      if (res.status !== 202 && res.status !== 200) {
        handleRejection(res, body);
        return;
      }
      if (!body || !body.id) {
        failSubmission('bad_response');
        return;
      }
      showJobStatus({ status: 'queued' });
      await pollUntilFinal(run, body.id, req.theme);
    } finally {
      if (run === state.run) {
        stopElapsed();
        setBusy(false);
      }
    }
  }

  function failSubmission(type, message) {
    stopElapsed();
    elapsedEl.textContent = '';
    const [zh, en] = describeError(type, null, message);
    setChildren(formError, bilingual(zh, en));
    setStatus('error', '未能提交。', 'Not submitted.');
  }

  function handleRejection(res, body) {
    stopElapsed();
    elapsedEl.textContent = '';
    const err = (body && body.error) || {};
    const type = err.type || (res.status === 401 ? 'unauthorized' : `http_${res.status}`);
    const wait = retryAfterSeconds(res);
    if (res.status === 429) {
      startCountdown(wait === null ? 10 : Math.max(1, wait), '请求太频繁了。', 'Too many requests.');
      setStatus('error', '请求太频繁，请稍等。', 'Rate limited: please wait.');
    } else if (res.status === 503 || res.status === 502 || res.status === 504) {
      const [zh, en] = describeError(type === 'unavailable' ? 'unavailable' : 'overloaded');
      if (wait !== null && wait > 0) startCountdown(wait, zh, en);
      else setChildren(formError, bilingual(zh, en));
      setStatus('error', '服务繁忙。', 'Service busy.');
    } else if (res.status === 401 || res.status === 403) {
      failSubmission('unauthorized');
      $('advanced').open = true;
      apiKeyInput.focus();
    } else if (res.status === 422 && err.field) {
      showFieldError(err.field, type, err.message);
      setStatus('error', '请修改标出的内容。', 'Please fix the marked field.');
    } else {
      failSubmission(type, err.message || `HTTP ${res.status}`);
    }
  }

  async function pollUntilFinal(run, id, theme) {
    const deadline = Date.now() + GIVE_UP_MS;
    let retries = 0;
    while (run === state.run) {
      if (Date.now() > deadline) {
        setStatus('error', '等待太久了，请稍后再看。', `Gave up waiting. Job ${id} may still finish.`);
        return;
      }
      const started = Date.now();
      let res;
      let body;
      try {
        ({ res, body } = await api(`/v1/jobs/${encodeURIComponent(id)}?wait=${WAIT_S}`));
      } catch (_) {
        res = null;
      }
      if (run !== state.run) return;
      if (res && res.ok && body && body.status) {
        retries = 0;
        if (body.status === 'succeeded' && body.result) {
          finishSucceeded(body, theme);
          return;
        }
        if (body.status === 'failed' || body.status === 'canceled') {
          finishFailed(body);
          return;
        }
        showJobStatus(body);
        // A server that answers early without news must not make this a tight loop.
        if (Date.now() - started < 500) await sleep(1000);
        continue;
      }
      if (res && res.status === 404) {
        failSubmission('not_found');
        return;
      }
      if (res && res.status >= 400 && res.status < 500 && res.status !== 429) {
        handleRejection(res, body);
        return;
      }
      retries += 1;
      if (retries > MAX_POLL_RETRIES) {
        failSubmission(res ? (res.status === 503 ? 'unavailable' : 'overloaded') : 'network');
        return;
      }
      const wait = retryAfterSeconds(res);
      await sleep(wait !== null ? Math.min(wait, 30) * 1000 : 1000 * 2 ** Math.min(retries, 4));
    }
  }

  function finishSucceeded(job, theme) {
    stopElapsed();
    const entry = {
      id: job.id,
      upper: job.result.upper,
      lower: job.result.lower,
      hengpi: job.result.hengpi,
      style: job.result.style || (job.request && job.request.style) || 'classic',
      theme: theme || (job.request && job.request.theme) || '',
      at: Date.now(),
    };
    const list = candidateList(job.result.candidates);
    if (list.length > 1) entry.candidates = list;
    setStatus('succeeded', `完成！横批：${entry.hengpi}`, 'Done!');
    addHistory(entry);
    showResult(entry);
  }

  function finishFailed(job) {
    stopElapsed();
    const msg = (job.error && job.error.message) || '';
    if (job.status === 'canceled') {
      setStatus('failed', '任务已取消。', 'The job was canceled.');
    } else {
      setStatus('failed', '生成失败，请再试一次。', `Generation failed${msg ? `: ${msg}` : ''}. Please try again.`);
    }
  }

  // ---------- result ----------

  // Only well-formed candidates (from the API or from storage); [] when there are none.
  function candidateList(raw) {
    if (!Array.isArray(raw)) return [];
    return raw.filter((c) => c && typeof c.upper === 'string' && typeof c.lower === 'string' && typeof c.hengpi === 'string')
      .map((c) => ({ upper: c.upper, lower: c.lower, hengpi: c.hengpi }));
  }

  // The couplet on screen: the chosen candidate, or the entry itself.
  function onScreen(entry) {
    return (entry.candidates && entry.candidates[state.candidate]) || entry;
  }

  function imageUrl(id, layout, candidate) {
    return `/v1/jobs/${encodeURIComponent(id)}/image.png?scale=${IMAGE_SCALE}&layout=${layout}&candidate=${candidate}`;
  }

  async function loadImage(entry) {
    const url = imageUrl(entry.id, state.layout, state.candidate);
    const couplet = onScreen(entry);
    imageNote.hidden = true;
    imageNote.replaceChildren();
    resultImage.alt = `像素春联 Pixel couplet: 横批 ${couplet.hengpi}; 上联 ${couplet.upper}; 下联 ${couplet.lower}`;
    downloadLink.download = `couplet-${couplet.hengpi}-${state.layout}${state.candidate ? `-${state.candidate + 1}` : ''}.png`;
    if (state.objectUrl) {
      URL.revokeObjectURL(state.objectUrl);
      state.objectUrl = null;
    }
    if (!apiKeyInput.value.trim()) {
      // No key: plain same-origin URLs, so the image and the download work directly.
      resultImage.src = url;
      downloadLink.href = url;
      downloadLink.removeAttribute('aria-disabled');
      return;
    }
    // With a key the image must be fetched with the Authorization header.
    try {
      const res = await fetch(url, { headers: authHeaders(), cache: 'no-store' });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      const blob = await res.blob();
      // A newer layout, candidate or couplet was chosen meanwhile.
      if (!state.shown || imageUrl(state.shown.id, state.layout, state.candidate) !== url) return;
      state.objectUrl = URL.createObjectURL(blob);
      resultImage.src = state.objectUrl;
      downloadLink.href = state.objectUrl;
      downloadLink.removeAttribute('aria-disabled');
    } catch (_) {
      imageMissing();
    }
  }

  function imageMissing() {
    resultImage.removeAttribute('src');
    downloadLink.removeAttribute('href');
    downloadLink.setAttribute('aria-disabled', 'true');
    imageNote.hidden = false;
    setChildren(imageNote, bilingual('图片已过期或暂时不可用，文字仍可复制。', 'The picture has expired or is unavailable; the text can still be copied.'));
  }

  function showResult(entry) {
    state.shown = entry;
    state.candidate = 0;
    resultSection.hidden = false;
    showCandidate();
    renderHistory();
  }

  // Text, counter and picture of the candidate `state.candidate` of the shown entry.
  function showCandidate() {
    const entry = state.shown;
    const couplet = onScreen(entry);
    const count = entry.candidates ? entry.candidates.length : 1;
    $('result-upper').textContent = couplet.upper;
    $('result-lower').textContent = couplet.lower;
    $('result-hengpi').textContent = couplet.hengpi;
    candidateNav.hidden = count < 2;
    candidateCounter.textContent = `${state.candidate + 1}/${count}`;
    copyNote.textContent = '';
    loadImage(entry);
  }

  function nextCandidate() {
    if (!state.shown || !state.shown.candidates) return;
    state.candidate = (state.candidate + 1) % state.shown.candidates.length;
    showCandidate();
  }

  function coupletText(entry) {
    return `横批：${entry.hengpi}\n上联：${entry.upper}\n下联：${entry.lower}`;
  }

  async function copyText() {
    if (!state.shown) return;
    const text = coupletText(onScreen(state.shown));
    let ok = false;
    if (navigator.clipboard && window.isSecureContext) {
      try {
        await navigator.clipboard.writeText(text);
        ok = true;
      } catch (_) { ok = false; }
    }
    if (!ok) ok = copyWithTextarea(text);
    setChildren(copyNote, ok
      ? bilingual('已复制。', 'Copied.')
      : bilingual('无法自动复制，请选中文字后按 Ctrl+C。', 'Could not copy automatically: select the text and press Ctrl+C.'));
  }

  // Fallback for browsers or contexts without the async clipboard API.
  function copyWithTextarea(text) {
    const ta = document.createElement('textarea');
    ta.value = text;
    ta.setAttribute('readonly', '');
    ta.className = 'visually-hidden';
    document.body.append(ta);
    ta.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch (_) { ok = false; }
    ta.remove();
    copyBtn.focus();
    return ok;
  }

  function setLayout(layout, persist) {
    if (layout !== 'door' && layout !== 'banner') layout = 'door';
    state.layout = layout;
    for (const b of layoutButtons) b.setAttribute('aria-pressed', String(b.dataset.layout === layout));
    if (persist) storageSet(localStorage, LAYOUT_KEY, layout);
    if (state.shown) loadImage(state.shown);
  }

  // ---------- history ----------

  function readHistory() {
    try {
      const list = JSON.parse(storageGet(localStorage, HISTORY_KEY) || '[]');
      return Array.isArray(list)
        ? list.filter((e) => e && typeof e.id === 'string' && typeof e.upper === 'string'
            && typeof e.lower === 'string' && typeof e.hengpi === 'string').slice(0, HISTORY_MAX)
          .map((e) => {
            const candidates = candidateList(e.candidates);
            return candidates.length > 1 ? { ...e, candidates } : { ...e, candidates: undefined };
          })
        : [];
    } catch (_) {
      return [];
    }
  }

  function addHistory(entry) {
    const list = readHistory().filter((e) => e.id !== entry.id);
    list.unshift(entry);
    storageSet(localStorage, HISTORY_KEY, JSON.stringify(list.slice(0, HISTORY_MAX)));
    renderHistory();
  }

  function renderHistory() {
    const list = readHistory();
    historyEmpty.hidden = list.length > 0;
    const items = list.map((entry) => {
      const li = document.createElement('li');
      const btn = document.createElement('button');
      btn.type = 'button';
      btn.dataset.testid = 'history-item';
      btn.dataset.id = entry.id;
      if (state.shown && state.shown.id === entry.id) btn.setAttribute('aria-current', 'true');
      const hengpi = document.createElement('span');
      hengpi.className = 'h-hengpi';
      hengpi.textContent = entry.hengpi;
      const lines = document.createElement('span');
      lines.className = 'h-lines';
      lines.textContent = `${entry.upper} / ${entry.lower}`;
      const meta = document.createElement('span');
      meta.className = 'h-meta';
      const when = new Date(entry.at || Date.now());
      meta.textContent = `${STYLE_NAMES[entry.style] || entry.style || ''} · ${when.toLocaleString()}`;
      btn.append(hengpi, lines, meta);
      btn.addEventListener('click', () => {
        showResult(entry);
        setStatus('succeeded', `显示已保存的春联：${entry.hengpi}`, 'Showing a saved couplet.');
        elapsedEl.textContent = '';
        resultSection.scrollIntoView({ block: 'start' });
        $('result-title').focus({ preventScroll: true });
      });
      li.append(btn);
      return li;
    });
    historyList.replaceChildren(...items);
  }

  // ---------- wiring ----------

  function syncLengthPicker() {
    const hasUpper = upperInput.value.trim().length > 0;
    lengthField.disabled = hasUpper;
    lengthHint.hidden = !hasUpper;
  }

  form.addEventListener('submit', onSubmit);
  upperInput.addEventListener('input', syncLengthPicker);
  for (const field of ['theme', 'upper', 'head', 'seed']) {
    $(field).addEventListener('input', () => {
      $(`error-${field}`).replaceChildren();
      $(field).removeAttribute('aria-invalid');
    });
  }
  apiKeyInput.value = storageGet(sessionStorage, API_KEY_KEY) || '';
  apiKeyInput.addEventListener('change', () => storageSet(sessionStorage, API_KEY_KEY, apiKeyInput.value.trim()));
  for (const b of layoutButtons) b.addEventListener('click', () => setLayout(b.dataset.layout, true));
  copyBtn.addEventListener('click', copyText);
  nextCandidateBtn.addEventListener('click', nextCandidate);
  downloadLink.addEventListener('click', (e) => {
    if (downloadLink.getAttribute('aria-disabled') === 'true') e.preventDefault();
  });
  resultImage.addEventListener('error', () => {
    if (resultImage.getAttribute('src')) imageMissing();
  });
  $('result-title').tabIndex = -1;

  setLayout(storageGet(localStorage, LAYOUT_KEY) || 'door', false);
  syncLengthPicker();
  renderHistory();
})();
