"use strict";
// Applicant lookup: derives the file name and the key from (application id, receipt code) with
// WebCrypto exactly as allocation/lookup.py does, fetches only that one file and decrypts it.
// Nothing is sent anywhere except the request for that file name.
(function () {
  const enc = new TextEncoder();
  const $ = (id) => document.getElementById(id);

  function b64(s) { return Uint8Array.from(atob(s), (c) => c.charCodeAt(0)); }
  function hex(buf) { return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join(""); }
  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let i = 0;
    for (const p of parts) { out.set(p, i); i += p.length; }
    return out;
  }
  // The same normalisation and strength grade as allocation/intake/receipt.py.
  const STRIP = " \t\r\n";
  const CODE_DROP = " \t\r\n-";
  function trim(s) {
    let a = 0, b = s.length;
    while (a < b && STRIP.includes(s[a])) a++;
    while (b > a && STRIP.includes(s[b - 1])) b--;
    return s.slice(a, b);
  }
  const normId = (s) => trim(s.normalize("NFKC")).toUpperCase();
  const normCode = (s) => Array.from(s.normalize("NFKC").toUpperCase()).filter((c) => !CODE_DROP.includes(c)).join("");
  const won = (n) => "₩" + Number(n).toLocaleString("en-US");
  const num = (n) => Number(n).toLocaleString("en-US");

  let config = null;
  async function loadConfig() {
    if (!config) {
      const r = await fetch("lookup.json", { cache: "no-store" });
      if (!r.ok) throw new Error("lookup.json " + r.status);
      config = await r.json();
      if (config.format !== "voucher-lookup/2") throw new Error("unknown lookup format");
    }
    return config;
  }

  // len(code) × floor(1000 × log2(alphabet)) in whole millibits; the alphabet is the smallest
  // listed one holding every character (anything else: the last, printable ASCII).
  function millibits(cfg, code) {
    const chars = Array.from(normCode(code));
    if (!chars.length) return 0;
    const alphabets = cfg.floor.alphabets;
    let per = alphabets[alphabets.length - 1].millibits_per_char;
    for (const a of alphabets) {
      if (chars.every((c) => a.chars.includes(c))) { per = a.millibits_per_char; break; }
    }
    return chars.length * per;
  }

  // The PBKDF2 iterations of the code's strength class; null: too weak, it has no file.
  function iterationsFor(cfg, code) {
    const m = millibits(cfg, code);
    let best = null;
    for (const c of cfg.floor.classes) if (m >= c.min_millibits) best = c.iterations;
    return best;
  }

  async function derive(cfg, applicationId, code) {
    const iterations = iterationsFor(cfg, code);
    if (iterations === null) return null;
    const salt = concat(b64(cfg.round_salt), enc.encode(cfg.round_id), new Uint8Array([0]), enc.encode(normId(applicationId)));
    const password = await crypto.subtle.importKey("raw", enc.encode(normCode(code)), "PBKDF2", false, ["deriveBits"]);
    const master = await crypto.subtle.deriveBits(
      { name: "PBKDF2", hash: "SHA-256", salt: salt, iterations: iterations }, password, 256);
    const hkdf = await crypto.subtle.importKey("raw", master, "HKDF", false, ["deriveBits", "deriveKey"]);
    const vsalt = b64(cfg.version_salt);
    const name = hex(await crypto.subtle.deriveBits(
      { name: "HKDF", hash: "SHA-256", salt: vsalt, info: enc.encode(cfg.name.info) }, hkdf, 256));
    const key = await crypto.subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt: vsalt, info: enc.encode(cfg.key.info) }, hkdf,
      { name: "AES-GCM", length: 256 }, false, ["decrypt"]);
    return { iterations: iterations, master: hex(master), name: name, key: key };
  }

  async function lookup(applicationId, code) {
    const cfg = await loadConfig();
    const d = await derive(cfg, applicationId, code);
    if (d === null) return "weak";
    const path = cfg.path.replace("{prefix}", d.name.slice(0, cfg.prefix_hex_digits)).replace("{name}", d.name);
    const resp = await fetch(path, { cache: "no-store" });
    if (!resp.ok) return null;
    try {
      const blob = await resp.json();
      const plain = await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: b64(blob.iv), additionalData: enc.encode(d.name) }, d.key, b64(blob.ct));
      return JSON.parse(new TextDecoder().decode(plain));
    } catch (e) {
      return null;
    }
  }

  // for tests and for the curious: the derivation the page uses, nothing secret
  window.voucherLookup = {
    normId: normId, normCode: normCode,
    millibits: async (code) => millibits(await loadConfig(), code),
    iterationsFor: async (code) => iterationsFor(await loadConfig(), code),
    derive: async (id, code) => {
      const d = await derive(await loadConfig(), id, code);
      return d && { iterations: d.iterations, master: d.master, name: d.name };
    },
  };

  function row(table, ko, en, value, cls) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = ko + " / " + en;
    const td = document.createElement("td");
    td.textContent = value;
    if (cls) td.className = cls;
    tr.append(th, td);
    table.append(tr);
  }

  function show(rec) {
    const out = $("result");
    out.replaceChildren();
    out.hidden = false;
    const notice = (outcome, ko, en) => {   // a result that is not an applicant's record
      out.className = "result notfound";
      out.dataset.outcome = outcome;
      const p = document.createElement("p");
      const strong = document.createElement("strong");
      strong.textContent = ko;
      const span = document.createElement("span");
      span.className = "en";
      span.textContent = en;
      p.append(strong, document.createElement("br"), span);
      out.append(p);
    };
    if (rec === "weak") {
      notice("weak", "이 확인 코드는 온라인 조회에 쓰기에는 너무 짧거나 단순합니다. 사업 담당자에게 문의하세요.",
             "This receipt code is too short or simple for an online lookup. Please contact the programme office.");
      return;
    }
    if (!rec) {
      notice("notfound", "조회 결과가 없습니다. 접수번호와 확인 코드를 다시 확인하세요.",
             "Not found, or wrong receipt code. Please check the application ID and the code.");
      return;
    }
    out.className = "result " + rec.status;
    out.dataset.outcome = rec.status;
    const badge = document.createElement("div");
    badge.className = "badge";
    badge.id = "status";
    badge.textContent = rec.status_label.ko + " · " + rec.status_label.en;
    const title = document.createElement("h3");
    title.textContent = rec.application_id + " · " + (rec.company_name || "");
    const table = document.createElement("table");
    row(table, "과제명", "Project", rec.project_title || "-");
    if (rec.status === "awarded") {
      const hours = Object.entries(rec.gpu_hours_awarded).map(([g, h]) => g + " " + num(h) + " h").join(", ");
      row(table, "지원 GPU 시간", "Awarded GPU-hours", hours || "-", "num-cell");
      row(table, "지원 비율", "Share of request", Math.round(rec.award_fraction * 100) + "%");
      row(table, "지원금 (정부)", "Awarded (government share)", won(rec.awarded_krw), "num-cell");
      row(table, "기업 자부담", "Co-payment (your share)", won(rec.copay_krw), "num-cell");
      row(table, "총 사용 금액", "Total cost", won(rec.cost_krw), "num-cell");
    } else if (Object.keys(rec.gpu_hours_requested || {}).length) {
      const hours = Object.entries(rec.gpu_hours_requested).map(([g, h]) => g + " " + num(h) + " h").join(", ");
      row(table, "신청 GPU 시간", "Requested GPU-hours", hours);
    }
    if (rec.score !== null && rec.score !== undefined) row(table, "평가 점수", "Score", String(rec.score));
    if (rec.waitlist_rank) {
      if (rec.status === "awarded") row(table, "나머지 부분 예비 순위", "Waitlist position (rest of request)", String(rec.waitlist_rank));
      else row(table, "예비 순위", "Waitlist position", String(rec.waitlist_rank));
    }
    const why = document.createElement("div");
    why.className = "why";
    const ko = document.createElement("p");
    ko.id = "explanation-ko";
    ko.textContent = rec.explanation.ko;
    const en = document.createElement("p");
    en.className = "en";
    en.id = "explanation-en";
    en.textContent = rec.explanation.en;
    why.append(ko, en);
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "심사 기록 원문 / Officer's note (" + (rec.reason || "") + ")";
    const detail = document.createElement("p");
    detail.textContent = rec.reason_detail || "-";
    details.append(summary, detail);
    out.append(badge, title, table, why, details);
  }

  $("lookup-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = $("application-id").value, code = $("receipt-code").value;
    if (!normId(id) || !normCode(code)) return;
    const button = $("lookup-button");
    button.disabled = true;
    $("busy").hidden = false;
    try {
      show(await lookup(id, code));
    } catch (e) {
      const out = $("result");
      out.hidden = false;
      out.className = "result notfound";
      out.dataset.outcome = "error";
      out.textContent = "조회할 수 없습니다 / Lookup failed: " + e.message;
    } finally {
      button.disabled = false;
      $("busy").hidden = true;
      $("receipt-code").value = "";
    }
  });
  if (!(window.crypto && crypto.subtle)) {
    $("result").hidden = false;
    $("result").textContent = "이 브라우저에서는 조회할 수 없습니다 (HTTPS 필요). / This browser cannot decrypt results (HTTPS needed).";
    $("lookup-button").disabled = true;
  }
})();
