// The landing page of a scanned code: position -> POST /api/v1/scans -> one screen.
// Text from the server (store names, addresses) only ever goes in through textContent.
"use strict";

(function () {
  const app = document.getElementById("app");
  const data = app.dataset;
  const LOCATE_TIMEOUT_MS = 10000;
  const WECHAT_READY_TIMEOUT_MS = 5000;
  const SCAN_TIMEOUT_MS = 15000;
  const WEEKDAYS = { mon: "周一", tue: "周二", wed: "周三", thu: "周四", fri: "周五", sat: "周六", sun: "周日" };

  // WeChat's OAuth comes back to this page with ?code=...&state=...: a one-time code.
  const query = new URLSearchParams(location.search);
  let oauthCode = query.has("state") ? query.get("code") : null;
  let fallbackUrl = webLink(data.fallbackUrl);

  const $ = (id) => document.getElementById(id);

  function webLink(url) {
    if (!url) return null;
    try {
      const parsed = new URL(url, location.href);
      return parsed.protocol === "https:" || parsed.protocol === "http:" ? parsed.href : null;
    } catch (e) {
      return null;
    }
  }

  function show(screen, { retry = false, fallback = true, retryLabel = "重试" } = {}) {
    for (const el of document.querySelectorAll("[data-screen]")) el.hidden = el.dataset.screen !== screen;
    $("retry").hidden = !retry;
    $("retry").textContent = retryLabel;
    $("retry").disabled = false;
    const link = fallback && fallbackUrl;
    $("fallback").hidden = !link;
    if (link) $("fallback").href = fallbackUrl;
    $("actions").hidden = !retry && !link;
    app.dataset.shown = screen;
  }

  function message(kind, title, text, options) {
    $("message-title").textContent = title;
    $("message-text").textContent = text;
    app.dataset.message = kind;
    show("message", options);
  }

  // --- position -------------------------------------------------------------------------

  class LocateError extends Error {
    constructor(reason) {
      super(reason);
      this.reason = reason; // denied | unavailable
    }
  }

  function browserPosition() {
    return new Promise((resolve, reject) => {
      if (!navigator.geolocation) return reject(new LocateError("unavailable"));
      navigator.geolocation.getCurrentPosition(
        (p) => resolve({ lat: p.coords.latitude, lng: p.coords.longitude, coord_system: "wgs84" }),
        (e) => reject(new LocateError(e.code === 1 ? "denied" : "unavailable")),
        { enableHighAccuracy: false, timeout: LOCATE_TIMEOUT_MS, maximumAge: 60000 }
      );
    });
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }

  // Resolves null when the JS-SDK cannot be used here (not configured, any failure): the
  // browser's geolocation is asked instead. A refusal inside WeChat is a refusal.
  async function wechatPosition() {
    let config;
    try {
      const answer = await fetch(data.jssdkConfigUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ code: data.code, url: location.href.split("#")[0] }),
      });
      if (!answer.ok) return null; // 404 wechat_not_configured, or anything else
      config = await answer.json();
      await loadScript(data.jssdkUrl);
    } catch (e) {
      return null;
    }
    const wx = window.wx;
    if (!wx || !config || !config.signature) return null;
    const ready = await new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), WECHAT_READY_TIMEOUT_MS);
      wx.config({
        debug: false,
        appId: config.appId,
        timestamp: config.timestamp,
        nonceStr: config.nonceStr,
        signature: config.signature,
        jsApiList: ["getLocation"],
      });
      wx.ready(() => { clearTimeout(timer); resolve(true); });
      wx.error(() => { clearTimeout(timer); resolve(false); });
    });
    if (!ready) return null;
    return new Promise((resolve, reject) => {
      wx.getLocation({
        type: "gcj02",
        success: (p) => resolve({ lat: p.latitude, lng: p.longitude, coord_system: "gcj02" }),
        cancel: () => reject(new LocateError("denied")),
        fail: () => resolve(null),
      });
    });
  }

  async function locate() {
    if (/MicroMessenger/i.test(navigator.userAgent)) {
      const position = await wechatPosition();
      if (position) return position;
    }
    return browserPosition();
  }

  // --- the scan -------------------------------------------------------------------------

  // One Idempotency-Key per scan body: a retry of the same scan (the answer was lost, or
  // the network dropped) is answered from the first one, and a one-time WeChat code is
  // never exchanged twice; a new position is a new scan with a new key.
  let sent = { body: null, key: null };

  function newKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  async function postScan(position) {
    const body = { code: data.code };
    if (position) Object.assign(body, position);
    if (oauthCode) body.oauth_code = oauthCode;
    const text = JSON.stringify(body);
    if (sent.body !== text) sent = { body: text, key: newKey() };
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), SCAN_TIMEOUT_MS);
    let answer;
    try {
      answer = await fetch(data.scanUrl, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Idempotency-Key": sent.key },
        body: text,
        signal: controller.signal,
      });
    } catch (e) {
      return { status: 0 };
    } finally {
      clearTimeout(timer);
    }
    let json = null;
    try {
      json = await answer.json();
    } catch (e) {
      json = null;
    }
    return { status: answer.status, json, retryAfter: Number(answer.headers.get("Retry-After")) || 0 };
  }

  // --- screens --------------------------------------------------------------------------

  function distanceText(m) {
    if (m === null || m === undefined) return "";
    if (m < 1000) return `距您 ${Math.round(m)} 米`;
    return `距您 ${m < 10000 ? (m / 1000).toFixed(1) : Math.round(m / 1000)} 公里`;
  }

  function openingText(next) {
    if (!next) return "";
    const day = next.in_days === 0 ? "今天" : next.in_days === 1 ? "明天" : WEEKDAYS[next.weekday] || "";
    return `${day} ${next.time} 开门`;
  }

  function showQr(prefix, url) {
    const link = webLink(url);
    $(prefix).hidden = !link;
    if (!link) return;
    const img = $(`${prefix}-img`);
    // A QR the page may not load (another host, gone) becomes a link to it.
    img.onerror = () => {
      img.hidden = true;
      img.nextElementSibling.hidden = true;
      $(`${prefix}-link`).href = link;
      $(`${prefix}-link`).hidden = false;
    };
    img.src = link;
  }

  function showStore(answer, locateError) {
    const store = answer.store;
    $("store-name").textContent = store.name;
    $("store-address").textContent = store.address;
    $("store-distance").textContent = distanceText(store.distance_m);
    const badge = $("store-badge");
    badge.hidden = store.open_now === null || store.open_now === undefined;
    badge.textContent = store.open_now ? "营业中" : "休息中";
    badge.className = store.open_now ? "badge open" : "badge shut";
    const today = store.hours_today;
    $("store-today").textContent = today ? `今日营业 ${today[0]}–${today[1]}` : store.open_now === false ? "今日不营业" : "";
    $("store-closed").hidden = store.open_now !== false;
    $("store-opens").textContent = openingText(store.next_opening);
    const phone = (store.phone || "").replace(/[^0-9+\-]/g, "");
    $("store-call").hidden = !phone;
    if (phone) {
      $("store-call").href = `tel:${phone}`;
      $("store-call").textContent = `拨打门店电话 ${store.phone}`;
    }
    $("store-guide").hidden = !answer.guide;
    if (answer.guide) $("store-guide").textContent = `为您服务的导购：${answer.guide.name}`;
    // The code's (or the routed guide's) WeCom 「联系我」 QR names who the customer adds;
    // the store's own uploaded QR is the fallback.
    showQr("contact", answer.wecom_qr_code || answer.wecom_contact_qr_url);
    showQr("group", answer.community_qr_url);
    const hours = $("store-hours");
    hours.replaceChildren();
    for (const [day, label] of Object.entries(WEEKDAYS)) {
      if (!(day in (store.opening_hours || {}))) continue;
      const span = store.opening_hours[day];
      const li = document.createElement("li");
      li.textContent = `${label}  ${span ? `${span[0]}–${span[1]}` : "休息"}`;
      hours.appendChild(li);
    }
    $("store-week").hidden = !hours.children.length;
    const notice = $("store-notice");
    notice.hidden = !locateError;
    if (locateError) notice.textContent = "没有获取到您的位置，为您推荐这家门店。允许定位后可重新匹配最近的门店。";
    app.dataset.storeState = store.open_now === false ? "closed" : "open";
    show("store", {
      retry: Boolean(locateError),
      retryLabel: "重新定位",
      fallback: store.open_now === false || Boolean(locateError),
    });
  }

  function showAnswer(result, locateError) {
    const { status, json } = result;
    if (json && json.fallback_url !== undefined) fallbackUrl = webLink(json.fallback_url) || fallbackUrl;
    if (status === 200 && json) {
      if (json.store) return showStore(json, locateError);
      if (locateError === "denied") {
        return message("denied", "无法获取您的位置", "您没有允许获取位置，我们无法为您匹配附近门店。请在浏览器或微信的设置中允许定位后重试。", { retry: true, retryLabel: "重新定位" });
      }
      if (locateError) {
        return message("unavailable", "暂时无法定位", "没能获取到您的位置，请打开手机定位服务后重试。", { retry: true, retryLabel: "重新定位" });
      }
      const where = fallbackUrl ? "您附近还没有我们的门店，可以查看全部门店。" : "您附近还没有我们的门店。";
      return message("none", "附近暂无门店", where, { retry: true, retryLabel: "重新定位" });
    }
    if (status === 0) return message("network", "网络连接失败", "请检查网络后重试。", { retry: true });
    if (status === 404) return message("unknown", "无法识别的二维码", "没有找到这个二维码，请确认扫描的是门店或活动海报上的二维码。");
    if (status === 410) return gone();
    if (status === 403) return message("not_yet_valid", "活动尚未开始", "这个二维码还未到使用时间，请稍后再来。");
    if (status === 429) return rateLimited(result.retryAfter);
    return message("server", "服务暂时不可用", "抱歉，服务器开小差了，请稍后重试。", { retry: true });
  }

  function gone() {
    const text =
      data.state === "expired" && data.validUntil
        ? `这个二维码已于 ${data.validUntil} 过期。`
        : data.state === "expired"
        ? "这个二维码已过期。"
        : "这个二维码已停用。";
    message("gone", "二维码已失效", text);
  }

  function rateLimited(seconds) {
    const wait = Math.max(1, Math.min(seconds || 30, 600));
    message("rate_limited", "扫码的人太多了", `请 ${wait} 秒后再试。`, { retry: true });
    const retry = $("retry");
    retry.disabled = true;
    let left = wait;
    retry.textContent = `重试（${left}）`;
    const timer = setInterval(() => {
      left -= 1;
      if (left > 0) {
        retry.textContent = `重试（${left}）`;
        return;
      }
      clearInterval(timer);
      retry.disabled = false;
      retry.textContent = "重试";
    }, 1000);
  }

  async function run() {
    if (data.state === "unknown") return show("unknown", { fallback: false });
    show("loading");
    // A code that will be refused needs no position; its scan is still recorded.
    let position = null;
    let locateError = null;
    if (data.state === "active") {
      $("loading-title").textContent = "正在获取您的位置…";
      try {
        position = await locate();
      } catch (e) {
        locateError = e.reason || "unavailable";
      }
    }
    $("loading-title").textContent = "正在为您匹配附近门店…";
    const result = await postScan(position);
    if (oauthCode && result.status !== 0) {
      // Spent once an answer came back: neither a retry nor a reload may send it again
      // (a retry after a lost answer re-sends it under the same key: replayed, not re-spent).
      oauthCode = null;
      query.delete("code");
      query.delete("state");
      const rest = query.toString();
      history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
    }
    showAnswer(result, locateError);
  }

  $("retry").addEventListener("click", () => {
    if (!$("retry").disabled) run();
  });
  run();
})();
