// Tenantry console: the admin API, from the same origin, with the admin key kept in sessionStorage.
// No framework and no inline code: the page's Content-Security-Policy allows scripts and styles
// from this origin only. Every value from the API reaches the page through textContent or an
// attribute, never as HTML.
"use strict";

(() => {
  const KEY_STORAGE = "tenantry.adminKey";
  const SVG = "http://www.w3.org/2000/svg";
  const DAYS = 30;
  const numbers = new Intl.NumberFormat("en-US");
  const $ = (id) => document.getElementById(id);

  // The API sits where the console does: /console locally, /v1/console on API Gateway.
  const API_BASE = (() => {
    const path = window.location.pathname;
    const at = path.lastIndexOf("/console");
    return at >= 0 ? path.slice(0, at) : "";
  })();
  const TIERS = (document.querySelector('meta[name="tenantry-tiers"]')?.content || "")
    .split(",").filter(Boolean);

  const state = {
    rows: [],
    sort: { key: "tenant_id", direction: "ascending" },
    tenant: null,
    // A message for the next tenants load to show (an action that ends on the tenants table).
    notice: "",
  };

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // ------------------------------------------------------------------ talking to the API
  function describe(status, body) {
    const detail = body && (body.message || body.Message);
    if (status === 401) {
      return "The admin key was refused (401 Unauthorized): it is wrong, revoked or expired. Sign in with a valid admin key.";
    }
    if (status === 403) {
      return `This key may not use the admin API (403 Forbidden: ${detail || "denied"}). Sign in with an admin key (tnt_admin_…).`;
    }
    if (status === 404) return `Not found (404): ${detail || "no such tenant"}.`;
    if (status === 429) return `Too many requests (429): ${detail || "slow down"}. Try again in a moment.`;
    if (status >= 500) return `The API failed (${status}): ${detail || "server error"}. Try again.`;
    return `The request was refused (${status}): ${detail || "bad request"}.`;
  }

  async function api(method, path, body) {
    const key = sessionStorage.getItem(KEY_STORAGE);
    if (!key) throw new ApiError(401, describe(401));
    const headers = { "X-API-Key": key, Accept: "application/json" };
    const init = { method, headers, cache: "no-store", credentials: "omit", redirect: "error" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(API_BASE + path, init);
    } catch (error) {
      throw new ApiError(0, `Network error: the API could not be reached (${error.message}). Check the connection and that the stack is running, then try again.`);
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!response.ok) throw new ApiError(response.status, describe(response.status, data));
    return data;
  }

  async function allStats() {
    const rows = [];
    let token = null;
    let period = "";
    do {
      const query = "?limit=100" + (token ? "&next_token=" + encodeURIComponent(token) : "");
      const page = await api("GET", "/stats" + query);
      rows.push(...page.tenants);
      token = page.next_token;
      period = page.period;
    } while (token);
    return { rows, period };
  }

  // ------------------------------------------------------------------ status, errors, views
  function setStatus(text) {
    $("status").textContent = text;
  }

  function showError(text) {
    const box = $("error");
    box.textContent = text;
    box.hidden = !text;
  }

  function show(view) {
    for (const id of ["login-view", "tenants-view", "tenant-view"]) $(id).hidden = id !== view;
    const signedIn = view !== "login-view";
    $("sign-out").hidden = !signedIn;
    $("nav-tenants").hidden = !signedIn;
  }

  function fail(error) {
    setStatus("");
    // Every call the console makes is an admin route: a 401 or a 403 means the key cannot be used
    // here (wrong, revoked, a tenant's key, or a suspended admin key), so it is forgotten.
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      sessionStorage.removeItem(KEY_STORAGE);
      showLogin(error.message);
      return;
    }
    showError(error instanceof ApiError ? error.message : `Unexpected error: ${error.message}`);
  }

  function showLogin(message) {
    // Signed out or refused: nothing read with the old key stays in the page.
    state.rows = [];
    state.tenant = null;
    document.querySelector("#tenants-table tbody").replaceChildren();
    document.querySelector("#keys-table tbody").replaceChildren();
    document.querySelector("#limits-table tbody").replaceChildren();
    $("tenant-facts").replaceChildren();
    $("charts").replaceChildren();
    hideNewKey();
    show("login-view");
    showError(message || "");
    setStatus(message ? "" : "Sign in with an admin key to see the tenants.");
    $("admin-key").value = "";
    $("admin-key").focus();
  }

  // ------------------------------------------------------------------ formatting
  const fmt = (value) => (value === null || value === undefined ? "–" : numbers.format(value));
  const ms = (value) => (value === null || value === undefined ? "–" : `${numbers.format(value)} ms`);
  function usd(value) {
    if (!value) return "$0.00";
    if (value < 0.01) return "$" + value.toPrecision(2);
    return "$" + value.toFixed(2);
  }
  const day = (period) => period.replace(/^day#/, "");
  const tokensOf = (row) => (row.tokens_in || 0) + (row.tokens_out || 0);
  const share = (used, limit) => (limit ? used / limit : 0);

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function bar(fraction, label) {
    const percent = Math.round(fraction * 1000) / 10;
    const fill = el("span", { className: "bar-fill" + (fraction >= 1 ? " full" : fraction >= 0.8 ? " high" : "") });
    // CSSOM, not a style attribute: the CSP allows no inline style attributes.
    fill.style.width = `${Math.min(100, percent)}%`;
    return el(
      "span",
      { className: "bar", role: "img", "aria-label": `${percent}% of ${label}`, "data-percent": String(percent) },
      el("span", { className: "bar-track" }, fill),
      el("span", { className: "bar-text", text: `${percent}%`, "aria-hidden": "true" }),
    );
  }

  function badge(status) {
    return el("span", { className: `badge ${status}`, text: status });
  }

  // ------------------------------------------------------------------ the tenants table
  function sortValue(row, key) {
    if (key === "tokens") return tokensOf(row);
    if (key === "quota_use") return share(row.requests, row.limits.requests_per_month);
    if (key === "token_use") return share(tokensOf(row), row.limits.llm_tokens_per_month);
    const value = row[key];
    return value === null || value === undefined ? -1 : value;
  }

  function renderTenants() {
    const tier = $("filter-tier").value;
    const status = $("filter-status").value;
    const { key, direction } = state.sort;
    const sign = direction === "ascending" ? 1 : -1;
    const rows = state.rows
      .filter((row) => (!tier || row.tier === tier) && (!status || row.status === status))
      .sort((a, b) => {
        const left = sortValue(a, key);
        const right = sortValue(b, key);
        if (left < right) return -sign;
        if (left > right) return sign;
        return a.tenant_id < b.tenant_id ? -1 : 1;
      });
    for (const th of document.querySelectorAll("#tenants-table th[data-sort]")) {
      if (th.dataset.sort === key) th.setAttribute("aria-sort", direction);
      else th.removeAttribute("aria-sort");
    }
    const body = document.querySelector("#tenants-table tbody");
    body.replaceChildren(
      ...rows.map((row) => {
        const tokens = tokensOf(row);
        const link = el("a", { href: `#/tenants/${encodeURIComponent(row.tenant_id)}`, text: row.tenant_id });
        return el(
          "tr",
          { "data-tenant": row.tenant_id },
          el("th", { scope: "row", "data-col": "tenant_id" }, link, el("div", { className: "muted", text: row.name })),
          el("td", { "data-col": "tier", text: row.tier }),
          el("td", { "data-col": "status" }, badge(row.status)),
          el("td", { className: "num", "data-col": "requests", text: fmt(row.requests) }),
          el("td", { className: "num", "data-col": "allowed", text: fmt(row.allowed) }),
          el("td", { className: "num", "data-col": "denied", text: fmt(row.denied) }),
          el("td", { className: "num", "data-col": "p95_latency_ms", text: ms(row.p95_latency_ms) }),
          el("td", { className: "num", "data-col": "tokens", text: fmt(tokens) }),
          el("td", { className: "num", "data-col": "estimated_cost_usd", text: usd(row.estimated_cost_usd) }),
          el(
            "td",
            { "data-col": "quota_use" },
            bar(share(row.requests, row.limits.requests_per_month), `${fmt(row.limits.requests_per_month)} requests a month`),
          ),
          el(
            "td",
            { "data-col": "token_use" },
            bar(share(tokens, row.limits.llm_tokens_per_month), `${fmt(row.limits.llm_tokens_per_month)} LLM tokens a month`),
          ),
        );
      }),
    );
    $("tenants-empty").hidden = rows.length > 0;
    return rows.length;
  }

  async function loadTenants() {
    show("tenants-view");
    showError("");
    setStatus("Loading tenants…");
    $("tenants-view").setAttribute("aria-busy", "true");
    try {
      const { rows, period } = await allStats();
      state.rows = rows;
      $("tenants-caption").textContent = `This month (${period.replace(/^month#/, "")}), ${rows.length} tenants`;
      const shown = renderTenants();
      setStatus(state.notice || `${shown} of ${rows.length} tenants shown.`);
      state.notice = "";
    } catch (error) {
      fail(error);
    } finally {
      $("tenants-view").removeAttribute("aria-busy");
    }
  }

  // ------------------------------------------------------------------ charts (SVG, drawn here)
  function chart(title, series, className, days) {
    const width = 440;
    const height = 160;
    const left = 48;
    const bottom = 22;
    const top = 10;
    const values = days.map((item) => series(item));
    const max = Math.max(1, ...values);
    const plotHeight = height - top - bottom;
    const step = (width - left - 8) / values.length;
    const total = values.reduce((sum, value) => sum + value, 0);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("role", "img");
    svg.setAttribute(
      "aria-label",
      `${title} per day over the last ${values.length} days: ${fmt(total)} in all, at most ${fmt(Math.max(0, ...values))} in a day.`,
    );
    const line = (x1, y1, x2, y2) => {
      const node = document.createElementNS(SVG, "line");
      for (const [name, value] of Object.entries({ x1, y1, x2, y2 })) node.setAttribute(name, value);
      node.setAttribute("class", "axis");
      return node;
    };
    const text = (x, y, content, anchor) => {
      const node = document.createElementNS(SVG, "text");
      node.setAttribute("x", x);
      node.setAttribute("y", y);
      node.setAttribute("text-anchor", anchor);
      node.textContent = content;
      return node;
    };
    svg.append(line(left, top, left, top + plotHeight), line(left, top + plotHeight, width - 4, top + plotHeight));
    svg.append(text(left - 6, top + 8, fmt(max), "end"), text(left - 6, top + plotHeight, "0", "end"));
    days.forEach((item, index) => {
      const value = values[index];
      const barHeight = (value / max) * plotHeight;
      const rect = document.createElementNS(SVG, "rect");
      rect.setAttribute("x", (left + index * step + 1).toFixed(1));
      rect.setAttribute("y", (top + plotHeight - barHeight).toFixed(1));
      rect.setAttribute("width", Math.max(1, step - 2).toFixed(1));
      rect.setAttribute("height", barHeight.toFixed(1));
      rect.setAttribute("class", className);
      rect.setAttribute("data-day", day(item.period));
      rect.setAttribute("data-value", String(value));
      const tip = document.createElementNS(SVG, "title");
      tip.textContent = `${day(item.period)}: ${fmt(value)}`;
      rect.append(tip);
      svg.append(rect);
    });
    if (days.length) {
      svg.append(text(left, height - 6, day(days[0].period), "start"));
      svg.append(text(width - 4, height - 6, day(days[days.length - 1].period), "end"));
    }
    return el("figure", { className: "chart", "data-chart": className }, el("figcaption", { text: title }), svg);
  }

  // ------------------------------------------------------------------ one tenant
  const LIMITS = [
    ["requests_per_minute", "Requests per minute"],
    ["burst", "Burst"],
    ["requests_per_month", "Requests per month"],
    ["tokens_per_month", "LLM tokens per month"],
  ];
  const sourceLabel = (tenant, name) =>
    tenant.limit_sources[name] === "override" ? "override" : `tier (${tenant.tier})`;

  function fact(label, value, name) {
    return el("div", { "data-fact": name }, el("dt", { text: label }), el("dd", { text: value }));
  }

  function renderTenant(tenant, usage, keys) {
    state.tenant = tenant;
    $("tenant-title").textContent = `${tenant.name} (${tenant.tenant_id})`;
    const month = usage.month;
    const limits = usage.limits;
    const tokens = month.tokens_in + month.tokens_out;
    $("tenant-facts").replaceChildren(
      fact("Tier", tenant.tier, "tier"),
      fact("Status", tenant.status, "status"),
      fact("Requests this month", fmt(month.requests), "requests"),
      fact("Allowed", fmt(month.allowed), "allowed"),
      fact("Denied (429)", fmt(month.denied), "denied"),
      fact("p95 latency", ms(month.p95_latency_ms), "p95"),
      fact("LLM tokens", fmt(tokens), "tokens"),
      fact("Estimated cost", usd(usage.estimated_cost.total), "cost"),
      fact("Quota use", `${fmt(month.requests)} of ${fmt(limits.requests_per_month)}`, "quota"),
      fact("Token budget use", `${fmt(tokens)} of ${fmt(limits.llm_tokens_per_month)}`, "token_budget"),
    );
    const days = usage.days || [];
    $("charts").replaceChildren(
      chart("Requests", (item) => item.requests, "requests", days),
      chart("Allowed", (item) => item.allowed, "allowed", days),
      chart("Denied (429)", (item) => item.denied, "denied", days),
      chart("LLM tokens", (item) => item.tokens_in + item.tokens_out, "tokens", days),
    );
    // The limits in force, and where each comes from: the tier, or the operator's override.
    document.querySelector("#limits-table tbody").replaceChildren(
      ...LIMITS.map(([name, label]) =>
        el(
          "tr",
          { "data-limit": name },
          el("th", { scope: "row", text: label }),
          el("td", { className: "num", text: fmt(tenant.limits[name]) }),
          el("td", {}, el("span", { className: `badge ${tenant.limit_sources[name]}`, text: sourceLabel(tenant, name) })),
        ),
      ),
    );
    document.querySelector("#keys-table tbody").replaceChildren(
      ...keys.map((key) =>
        el(
          "tr",
          { "data-key": key.key_id },
          el("td", {}, el("code", { text: key.hint })),
          el("td", { text: key.name || "–" }),
          el("td", { text: key.scopes ? key.scopes.join(", ") : "every scope" }),
          el("td", { text: key.key_id }),
          el("td", { text: key.status }),
          el("td", { text: key.created_at }),
          el("td", { text: key.expires_at || "never" }),
        ),
      ),
    );
    $("action-suspend").disabled = tenant.status === "suspended";
    $("action-resume").disabled = tenant.status === "active";
    const select = $("tier-select");
    select.replaceChildren(...TIERS.map((tier) => el("option", { value: tier, text: tier })));
    select.value = tenant.tier;
  }

  async function loadTenant(tenantId, message) {
    show("tenant-view");
    showError("");
    setStatus(`Loading ${tenantId}…`);
    $("tenant-view").setAttribute("aria-busy", "true");
    const path = `/tenants/${encodeURIComponent(tenantId)}`;
    try {
      const [tenant, usage, keys] = await Promise.all([
        api("GET", path),
        api("GET", `${path}/usage?days=${DAYS}`),
        api("GET", `${path}/keys`),
      ]);
      renderTenant(tenant, usage, keys.keys);
      setStatus(message || `Tenant ${tenantId} loaded.`);
    } catch (error) {
      fail(error);
    } finally {
      $("tenant-view").removeAttribute("aria-busy");
    }
  }

  // ------------------------------------------------------------------ confirmation
  function confirmAction({ title, text, confirm, typed }) {
    const dialog = $("confirm");
    const ok = $("confirm-ok");
    const cancel = $("confirm-cancel");
    const input = $("confirm-input");
    $("confirm-title").textContent = title;
    $("confirm-text").textContent = text;
    ok.textContent = confirm;
    $("confirm-typed").hidden = !typed;
    input.value = "";
    ok.disabled = Boolean(typed);
    return new Promise((resolve) => {
      const finish = (answer) => {
        ok.onclick = cancel.onclick = dialog.oncancel = input.oninput = input.onkeydown = null;
        dialog.close();
        resolve(answer);
      };
      ok.onclick = () => finish(true);
      cancel.onclick = () => finish(false);
      dialog.oncancel = (event) => {
        event.preventDefault();
        finish(false);
      };
      input.oninput = () => {
        ok.disabled = input.value !== typed;
      };
      input.onkeydown = (event) => {
        if (event.key === "Enter" && !ok.disabled) finish(true);
      };
      dialog.showModal();
      (typed ? input : cancel).focus();
    });
  }

  async function act(options, run) {
    if (!(await confirmAction(options))) {
      setStatus("Cancelled.");
      return;
    }
    showError("");
    setStatus(`${options.confirm}…`);
    try {
      await run();
    } catch (error) {
      fail(error);
    }
  }

  function hideNewKey() {
    $("new-key-value").value = "";
    $("new-key").hidden = true;
  }

  function wireActions() {
    const id = () => state.tenant.tenant_id;
    const path = () => `/tenants/${encodeURIComponent(id())}`;
    $("action-suspend").addEventListener("click", () =>
      act(
        {
          title: "Suspend tenant",
          text: `Suspend ${id()}? Its keys get 403 on every route until it is resumed. On AWS the authorizer cache is flushed; a cached answer may still admit it for up to 5 minutes if the flush fails.`,
          confirm: "Suspend",
        },
        async () => {
          await api("PATCH", path(), { status: "suspended" });
          await loadTenant(id(), `${id()} is suspended.`);
        },
      ),
    );
    $("action-resume").addEventListener("click", () =>
      act({ title: "Resume tenant", text: `Resume ${id()}? Its keys work again.`, confirm: "Resume" }, async () => {
        await api("PATCH", path(), { status: "active" });
        await loadTenant(id(), `${id()} is active again.`);
      }),
    );
    $("action-tier").addEventListener("click", () => {
      const tier = $("tier-select").value;
      if (tier === state.tenant.tier) {
        setStatus(`${id()} is already on ${tier}.`);
        return;
      }
      act(
        {
          title: "Change tier",
          text: `Move ${id()} from ${state.tenant.tier} to ${tier}? Its keys move to the ${tier} usage plan (limits change at once).`,
          confirm: "Change tier",
        },
        async () => {
          await api("PATCH", path(), { tier });
          await loadTenant(id(), `${id()} is now on ${tier}.`);
        },
      );
    });
    $("action-rotate").addEventListener("click", () =>
      act(
        {
          title: "Rotate key",
          text: `Issue a new key for ${id()}? Its older keys keep working for 24 hours, then stop. The new key is shown once.`,
          confirm: "Rotate key",
        },
        async () => {
          const issued = await api("POST", `${path()}/keys`, {});
          await loadTenant(id(), `New key issued for ${id()}: copy it now, it is not shown again.`);
          $("new-key-value").value = issued.api_key;
          $("new-key-note").textContent = issued.older_keys_expire_at
            ? `Older keys stop at ${issued.older_keys_expire_at}. Only the hint ${issued.key.hint} is kept.`
            : `Only the hint ${issued.key.hint} is kept.`;
          $("new-key").hidden = false;
          $("new-key-value").focus();
          $("new-key-value").select();
        },
      ),
    );
    $("action-offboard").addEventListener("click", () =>
      act(
        {
          title: "Offboard tenant",
          text: `Offboard ${id()}? Every key is revoked and every item of the tenant is deleted. This cannot be undone.`,
          confirm: "Offboard",
          typed: id(),
        },
        async () => {
          const tenantId = id();
          const result = await api("DELETE", path());
          const items = Object.values(result.items_deleted).reduce((sum, count) => sum + count, 0);
          // The hash change loads the tenants table, which then shows this notice.
          state.notice = `${tenantId} was offboarded: ${result.keys_revoked} keys revoked, ${items} items deleted.`;
          window.location.hash = "#/";
        },
      ),
    );
    $("copy-key").addEventListener("click", async () => {
      const value = $("new-key-value").value;
      try {
        await navigator.clipboard.writeText(value);
        setStatus("The new key is on the clipboard.");
      } catch {
        $("new-key-value").select();
        setStatus("Copying was refused by the browser: the key is selected, press Ctrl+C.");
      }
    });
  }

  // ------------------------------------------------------------------ routing and start
  function route() {
    hideNewKey();
    if (!sessionStorage.getItem(KEY_STORAGE)) {
      showLogin();
      return;
    }
    const match = window.location.hash.match(/^#\/tenants\/([^/]+)$/);
    if (match) loadTenant(decodeURIComponent(match[1]));
    else loadTenants();
  }

  function start() {
    const tierFilter = $("filter-tier");
    for (const tier of TIERS) tierFilter.append(el("option", { value: tier, text: tier }));
    $("login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("admin-key").value.trim();
      if (!key) {
        showError("Type the admin key first.");
        $("admin-key").focus();
        return;
      }
      sessionStorage.setItem(KEY_STORAGE, key);
      $("admin-key").value = "";
      showError("");
      if (window.location.hash && window.location.hash !== "#/") window.location.hash = "#/";
      else route();
    });
    $("sign-out").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORAGE);
      showLogin("");
      setStatus("Signed out: the key was removed from this tab.");
    });
    $("refresh").addEventListener("click", loadTenants);
    for (const select of [tierFilter, $("filter-status")]) {
      select.addEventListener("change", () => {
        const shown = renderTenants();
        setStatus(`${shown} of ${state.rows.length} tenants shown.`);
      });
    }
    for (const th of document.querySelectorAll("#tenants-table th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => {
        const key = th.dataset.sort;
        const same = state.sort.key === key;
        state.sort = { key, direction: same && state.sort.direction === "ascending" ? "descending" : "ascending" };
        renderTenants();
        setStatus(`Sorted by ${th.textContent.trim()}, ${state.sort.direction}.`);
      });
    }
    wireActions();
    window.addEventListener("hashchange", route);
    route();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
