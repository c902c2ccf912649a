// The demo storefront: every widget is one call to the shoprec API, every click and cart is an
// event posted to it, and the widgets reload after each event so the change shows at once.
"use strict";

const state = {
  session: localStorage.getItem("shoprec-session") || ("visit-" + Math.random().toString(36).slice(2, 10)),
  key: null,
  cart: [],
  page: "home",
  item: null,
  titles: {},   // item_id → title, for the cart lines and messages
};
localStorage.setItem("shoprec-session", state.session);

const $ = (id) => document.getElementById(id);

function headers() {
  const h = { "Content-Type": "application/json" };
  if (state.key) h["X-API-Key"] = state.key;
  return h;
}

function status(text, isError) {
  const el = $("status");
  el.textContent = text || "";
  el.classList.toggle("error", !!isError);
}

async function api(method, path, body) {
  const res = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const msg = (data.error && data.error.message) || res.statusText;
    throw new Error(`${method} ${path}: ${res.status} ${msg}`);
  }
  return data;
}

async function recommend(scenario, context) {
  return api("POST", `/v1/recommendations/${scenario}`, { session_id: state.session, ...context });
}

async function track(itemId, behaviour, from) {
  const ev = { session_id: state.session, item_id: itemId, behaviour };
  if (from) { ev.request_id = from.requestId; ev.position = from.position; ev.scenario = from.scenario; }
  await api("POST", "/v1/events", { events: [ev] });
}

// a stable colour per item for its placeholder picture
function hue(id) { let h = 0; for (const c of String(id)) h = (h * 31 + c.charCodeAt(0)) % 360; return h; }

function price(p) { return (typeof p === "number") ? `£${p.toFixed(2)}` : ""; }

function card(item, resp, scenario) {
  const el = document.createElement("div");
  el.className = "card";
  el.dataset.testid = "card";
  el.dataset.itemId = item.item_id;
  el.setAttribute("data-testid", "card");
  el.innerHTML = `
    <div class="thumb" aria-hidden="true">${(item.title || item.item_id).slice(0, 1)}</div>
    <a href="#" class="title" data-testid="card-title"></a>
    <div class="reason" data-testid="reason"></div>
    <button class="add" data-testid="add-to-cart">Add to cart</button>`;
  el.querySelector(".title").textContent = item.title || item.item_id;
  el.querySelector(".thumb").style.setProperty("--hue", String(hue(item.item_id)));
  if (item.title) state.titles[item.item_id] = item.title;
  el.querySelector(".reason").textContent = item.reason;
  const from = { requestId: resp.request_id, position: item.position, scenario };
  el.querySelector(".title").addEventListener("click", (e) => { e.preventDefault(); openItem(item.item_id, from); });
  el.querySelector(".add").addEventListener("click", () => addToCart(item.item_id, from));
  return el;
}

async function fill(containerId, scenario, context) {
  const box = $(containerId);
  try {
    const resp = await recommend(scenario, context);
    box.replaceChildren(...resp.items.map((it) => card(it, resp, scenario)));
    box.dataset.requestId = resp.request_id;
    box.dataset.items = resp.items.map((it) => it.item_id).join(",");
    if (!resp.items.length) box.textContent = "Nothing to show yet.";
  } catch (err) {
    box.textContent = "";
    status(err.message, true);
  }
}

function show(page) {
  state.page = page;
  for (const p of ["home", "item", "search", "cart"]) $(`page-${p}`).hidden = p !== page;
}

async function renderHome() { show("home"); await fill("home-feed", "home", { k: 12 }); }

async function openItem(itemId, from) {
  state.item = itemId;
  show("item");
  try {
    await track(itemId, "view", from);
    const it = await api("GET", `/v1/items/${encodeURIComponent(itemId)}`);
    const d = $("item-detail");
    d.innerHTML = `<h1 data-testid="item-title"></h1><p class="price"></p><p class="desc"></p>
      <button data-testid="detail-add-to-cart">Add to cart</button>`;
    d.querySelector("h1").textContent = it.title || it.item_id;
    if (it.title) state.titles[itemId] = it.title;
    d.querySelector(".price").textContent = price(it.price) + (it.in_stock ? "" : " · out of stock");
    d.querySelector(".desc").textContent = it.description && it.description !== it.title ? it.description : "";
    d.dataset.itemId = itemId;
    d.querySelector("button").addEventListener("click", () => addToCart(itemId, null));
  } catch (err) { status(err.message, true); }
  await Promise.all([
    fill("similar", "item_page", { current_item: itemId, k: 8 }),
    fill("together", "cart", { basket: [itemId], k: 6 }),
  ]);
}

async function addToCart(itemId, from) {
  try {
    await track(itemId, "add_to_cart", from);
    if (!state.cart.includes(itemId)) state.cart.push(itemId);
    $("cart-count").textContent = state.cart.length;
    status(`Added ${state.titles[itemId] || itemId} to the cart`);
    await refresh();
  } catch (err) { status(err.message, true); }
}

async function renderCart() {
  show("cart");
  const ul = $("cart-lines");
  ul.replaceChildren(...state.cart.map((id) => {
    const li = document.createElement("li");
    li.textContent = state.titles[id] || id;
    const ref = document.createElement("span");
    ref.className = "muted";
    ref.textContent = ` · ${id}`;
    li.append(ref);
    li.dataset.itemId = id;
    li.dataset.testid = "cart-line";
    return li;
  }));
  if (!state.cart.length) ul.textContent = "The cart is empty.";
  await fill("complements", "cart", { k: 8 });
}

async function checkout() {
  try {
    for (const id of state.cart) await track(id, "purchase", null);
    status(`Thank you! ${state.cart.length} items bought.`);
    state.cart = [];
    $("cart-count").textContent = "0";
    await renderCart();
  } catch (err) { status(err.message, true); }
}

async function search(q) {
  show("search");
  $("search-query").textContent = q;
  await fill("results", "search", { query: q, k: 12 });
}

async function refresh() {
  if (state.page === "home") return renderHome();
  if (state.page === "item") return Promise.all([
    fill("similar", "item_page", { current_item: state.item, k: 8 }),
    fill("together", "cart", { basket: [state.item], k: 6 }),
  ]);
  if (state.page === "cart") return renderCart();
}

async function main() {
  $("visitor").textContent = `Your visit: ${state.session}`;
  try {
    const cfg = await api("GET", "/storefront/config.json");
    state.key = cfg.public_key;
  } catch (err) { status(err.message, true); }
  $("logo").addEventListener("click", (e) => { e.preventDefault(); renderHome(); });
  $("cart-button").addEventListener("click", () => renderCart());
  $("checkout").addEventListener("click", () => checkout());
  $("search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("search").value.trim();
    if (q) search(q);
  });
  await renderHome();
  document.body.dataset.ready = "1";
}

main();
