// medsign phone pages. No framework, no external resource; page data comes from the
// non-executable JSON block #page-data (the Content-Security-Policy forbids inline scripts).
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const $ = (id) => document.getElementById(id);

  function msg(key, vars) {
    let text = data.messages[key] || key;
    for (const [name, value] of Object.entries(vars || {})) text = text.replace("{" + name + "}", value);
    return text;
  }

  function toUnlock() {
    location.assign("/m/unlock?next=" + encodeURIComponent(location.pathname));
  }

  // Every state-changing call carries X-Medsign-Phone: a cross-site page cannot add it.
  // A Blob (a photo) goes as the raw body with its own type; anything else as JSON.
  async function api(method, path, body) {
    const raw = body instanceof Blob;
    const response = await fetch(path, {
      method: method,
      credentials: "same-origin",
      headers: {
        "Content-Type": raw ? (body.type || "application/octet-stream") : "application/json",
        "X-Medsign-Phone": "1",
      },
      body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
    });
    const text = await response.text();
    let parsed = {};
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch (e) {
      // A proxy's HTML error page (e.g. its own body-size limit): keep the status only.
      parsed = { code: response.status === 413 ? "image-too-large" : undefined };
    }
    if (!response.ok) {
      if (response.status === 401 && data.page !== "unlock" && data.page !== "enrol") toUnlock();
      // The clinician's language where we know the code; the server's words otherwise.
      const known = data.messages["error." + parsed.code];
      const error = new Error(known ? msg("error." + parsed.code, parsed) : (parsed.detail || parsed.title || msg("common.error")));
      error.status = response.status;
      error.code = parsed.code;
      throw error;
    }
    return parsed;
  }

  // -- a signing key kept on this phone (WebCrypto P-256, non-extractable, in IndexedDB) --

  const b64 = (buffer) => btoa(String.fromCharCode(...new Uint8Array(buffer)));
  const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const ECDSA = { name: "ECDSA", hash: "SHA-256" };

  function keyStore(mode, action) {
    return new Promise((resolve, reject) => {
      const opened = indexedDB.open("medsign", 1);
      opened.onupgradeneeded = () => opened.result.createObjectStore("keys");
      opened.onerror = () => reject(opened.error);
      opened.onsuccess = () => {
        const request = action(opened.result.transaction("keys", mode).objectStore("keys"));
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      };
    });
  }

  async function makeDeviceKey(enrolmentId) {
    // extractable=false: the private key can sign but can never be read out, not even by us.
    const pair = await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign", "verify"]);
    const spki = new Uint8Array(await crypto.subtle.exportKey("spki", pair.publicKey));
    const label = new TextEncoder().encode("medsign device key v1");
    const id = new TextEncoder().encode(enrolmentId);
    const message = new Uint8Array(label.length + id.length + spki.length + 2);
    message.set(label, 0);
    message.set(id, label.length + 1);
    message.set(spki, label.length + id.length + 2);
    const proof = await crypto.subtle.sign(ECDSA, pair.privateKey, message);
    await keyStore("readwrite", (store) => store.put({ privateKey: pair.privateKey, spki: spki }, "signing"));
    return { public_key: b64(spki), proof: b64(proof) };
  }

  async function signOnDevice(payloads) {
    const held = await keyStore("readonly", (store) => store.get("signing"));
    if (!held) throw new Error(msg("pin.no_device_key"));
    const signatures = [];
    for (const p of payloads) {
      signatures.push({
        request_id: p.request_id,
        raw: b64(await crypto.subtle.sign(ECDSA, held.privateKey, unb64(p.message))),
        cms: b64(await crypto.subtle.sign(ECDSA, held.privateKey, unb64(p.signed_attributes))),
      });
    }
    return signatures;
  }

  // -- passkeys (WebAuthn): options arrive with base64url fields, answers go back the same way --

  const fromB64url = (text) => unb64(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  const toB64url = (buffer) => b64(buffer).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  const credentialIds = (list) => (list || []).map((c) => Object.assign({}, c, { id: fromB64url(c.id) }));

  async function createPasskey(options) {
    options.challenge = fromB64url(options.challenge);
    options.user.id = fromB64url(options.user.id);
    options.excludeCredentials = credentialIds(options.excludeCredentials);
    const made = await navigator.credentials.create({ publicKey: options });
    return {
      id: made.id, rawId: toB64url(made.rawId), type: made.type,
      authenticatorAttachment: made.authenticatorAttachment,
      clientExtensionResults: made.getClientExtensionResults(),
      response: {
        clientDataJSON: toB64url(made.response.clientDataJSON),
        attestationObject: toB64url(made.response.attestationObject),
        transports: made.response.getTransports ? made.response.getTransports() : [],
      },
    };
  }

  async function usePasskey(options) {
    options.challenge = fromB64url(options.challenge);
    options.allowCredentials = credentialIds(options.allowCredentials);
    const used = await navigator.credentials.get({ publicKey: options });
    return {
      id: used.id, rawId: toB64url(used.rawId), type: used.type,
      authenticatorAttachment: used.authenticatorAttachment,
      clientExtensionResults: used.getClientExtensionResults(),
      response: {
        clientDataJSON: toB64url(used.response.clientDataJSON),
        authenticatorData: toB64url(used.response.authenticatorData),
        signature: toB64url(used.response.signature),
        userHandle: used.response.userHandle ? toB64url(used.response.userHandle) : null,
      },
    };
  }

  function show(element, text) {
    element.textContent = text;
    element.hidden = !text;
  }

  let flashTimer = null;
  function flash(text) {
    const element = $("flash");
    show(element, text);
    clearTimeout(flashTimer);
    flashTimer = setTimeout(() => show(element, ""), 4000);
  }

  // One intention for the given requests, confirmed with the PIN. A wrong PIN keeps the
  // dialog open (the server counts tries and locks after five); resolves with the signed items.
  function signWithPin(ids) {
    const dialog = $("pin-dialog");
    const input = $("pin-input");
    const error = $("pin-error");
    const submit = $("pin-submit");
    show($("pin-what"), msg("pin.for_items", { n: ids.length }));
    show(error, "");
    input.value = "";
    let intent = null;
    return new Promise((resolve) => {
      const close = (result) => {
        $("pin-form").onsubmit = null;
        $("pin-cancel").onclick = null;
        dialog.close();
        resolve(result);
      };
      $("pin-cancel").onclick = () => close(null);
      const passkey = $("passkey-sign");
      passkey.hidden = !data.passkey;
      passkey.onclick = async () => {
        passkey.disabled = true;
        try {
          // Its own intention: the passkey signs a challenge derived from exactly these digests.
          const started = await api("POST", "/m/api/intents", { request_ids: ids, method: "passkey" });
          const body = { assertion: await usePasskey(started.passkey_options) };
          if (started.device_payloads.length) body.device_signatures = await signOnDevice(started.device_payloads);
          close((await api("POST", "/m/api/intents/" + started.id + "/confirm", body)).items);
        } catch (e) {
          show(error, e.message);
        } finally {
          passkey.disabled = false;
        }
      };
      $("pin-form").onsubmit = async (event) => {
        event.preventDefault();
        submit.disabled = true;
        try {
          if (intent === null) intent = await api("POST", "/m/api/intents", { request_ids: ids, method: "pin" });
          const body = { pin: input.value };
          // A key on this phone signs here; the server checks the PIN, then the signatures.
          if (intent.device_payloads.length) body.device_signatures = await signOnDevice(intent.device_payloads);
          const signed = await api("POST", "/m/api/intents/" + intent.id + "/confirm", body);
          close(signed.items);
        } catch (e) {
          if (e.code === "intent-expired" || e.code === "intent-used") intent = null;
          show(error, e.message);
          input.value = "";
          input.focus();
        } finally {
          submit.disabled = false;
        }
      };
      dialog.showModal();
      input.focus();
    });
  }

  // -- pages ------------------------------------------------------------------------------

  function home() {
    const list = $("pending");
    const button = $("sign-selected");
    const all = $("select-all");
    const picked = () => Array.from(list.querySelectorAll(".pick:checked")).map((c) => c.value);
    const refreshButton = () => {
      const n = picked().length;
      button.textContent = msg("home.sign_selected", { n: n });
      button.disabled = n === 0;
    };
    function render(items) {
      const keep = new Set(picked());
      list.replaceChildren(...items.map((item) => {
        const li = document.createElement("li");
        li.className = "item";
        li.dataset.id = item.id;
        const label = document.createElement("label");
        label.className = "check";
        const box = document.createElement("input");
        box.type = "checkbox";
        box.className = "pick";
        box.value = item.id;
        box.checked = keep.has(item.id);
        box.setAttribute("aria-label", item.summary);
        label.append(box);
        const link = document.createElement("a");
        link.className = "body";
        link.href = "/m/requests/" + encodeURIComponent(item.id);
        for (const [cls, text] of [["scene", item.scene_label], ["summary", item.summary],
                                   ["meta", item.application + " · " + item.record_id]]) {
          const span = document.createElement("span");
          span.className = cls;
          span.textContent = text;
          link.append(span);
        }
        if (item.document) {
          const tag = document.createElement("span");
          tag.className = "tag";
          tag.textContent = msg("doc.list_tag", { n: item.document.pages });
          link.firstChild.append(" ", tag);
        }
        li.append(label, link);
        return li;
      }));
      $("empty").hidden = items.length > 0;
      all.checked = items.length > 0 && picked().length === items.length;
      refreshButton();
    }
    list.addEventListener("change", refreshButton);
    all.addEventListener("change", () => {
      for (const box of list.querySelectorAll(".pick")) box.checked = all.checked;
      refreshButton();
    });
    button.addEventListener("click", async () => {
      const signed = await signWithPin(picked());
      if (signed) {
        flash(msg("home.signed", { n: signed.length }));
        render((await api("GET", "/m/api/pending")).items);
      }
    });
    render(data.items);
    const events = new EventSource("/m/api/events");
    events.addEventListener("pending", (event) => render(JSON.parse(event.data).items));
    events.addEventListener("session-ended", () => { events.close(); toUnlock(); });
  }

  function request() {
    const sign = $("sign");
    if (sign) {
      sign.addEventListener("click", async () => {
        const signed = await signWithPin([data.id]);
        if (signed) location.reload();
      });
    }
    const dialog = $("reject-dialog");
    if (!dialog) return;
    $("reject").addEventListener("click", () => { show($("reject-error"), ""); dialog.showModal(); });
    $("reject-cancel").addEventListener("click", () => dialog.close());
    $("reject-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api("POST", "/m/api/requests:reject", { request_ids: [data.id], reason: $("reject-reason").value });
        dialog.close();
        location.reload();
      } catch (e) {
        show($("reject-error"), e.message);
      }
    });
  }

  // Photos over this size are redrawn at the extractor's working size (2400 px on the long
  // side) before upload; smaller ones go untouched, EXIF orientation and all, so the server
  // sees exactly what the camera wrote in the common case.
  const SHRINK_ABOVE_BYTES = 4 * 1024 * 1024;
  const WORK_SIDE = 2400;

  async function shrink(file) {
    if (file.size <= SHRINK_ABOVE_BYTES || !window.createImageBitmap) return file;
    let bitmap;
    try {
      bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
    } catch (e) {
      return file;  // a format this browser cannot draw: let the server judge it
    }
    const scale = Math.min(1, WORK_SIDE / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    bitmap.close();
    return new Promise((resolve) => canvas.toBlob((blob) => resolve(blob || file), "image/jpeg", 0.92));
  }

  function handwriting() {
    const file = $("hw-file");
    if (!file) return;
    const error = $("hw-error");
    const busy = $("hw-busy");
    const take = $("hw-take");
    let proposal = data.handwriting.proposed;
    let active = data.handwriting.active;
    // A proposal is shown alone: the clinician judges it, not a comparison.
    function propose(p) {
      proposal = p;
      $("hw-proposal").hidden = !p;
      $("hw-start").hidden = !!p;
      $("hw-active-box").hidden = !!p || !active;
      $("hw-none").hidden = !!p || !!active;
      for (const img of document.querySelectorAll(".hw-proposed")) {
        if (p) img.src = p.png_url; else img.removeAttribute("src");
      }
    }
    // The visible control is the input's label (a styled file input cannot be); labels do
    // not answer the keyboard by themselves.
    take.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        file.click();
      }
    });
    file.addEventListener("change", async () => {
      const chosen = file.files[0];
      file.value = "";  // choosing the same photo again must fire "change" again
      if (!chosen) return;
      show(error, "");
      busy.hidden = false;
      take.classList.add("disabled");
      try {
        const photo = await shrink(chosen);
        if (photo.size > data.handwriting.max_photo_bytes) throw new Error(msg("error.image-too-large"));
        propose(await api("POST", "/m/api/handwriting", photo));
        $("hw-proposal").scrollIntoView({ block: "center" });
      } catch (e) {
        show(error, e.message);
      } finally {
        busy.hidden = true;
        take.classList.remove("disabled");
      }
    });
    $("hw-confirm").addEventListener("click", async () => {
      try {
        active = await api("POST", "/m/api/handwriting/" + encodeURIComponent(proposal.id) + "/confirm");
        $("hw-active").src = active.png_url;
        take.textContent = msg("hw.replace");
        propose(null);
        show(error, "");
        flash(msg("hw.saved"));
      } catch (e) {
        show(error, e.message);
      }
    });
    $("hw-retake").addEventListener("click", async () => {
      show(error, "");
      try {
        await api("DELETE", "/m/api/handwriting/" + encodeURIComponent(proposal.id));
      } catch (e) {
        if (e.code !== "handwriting-not-found") return show(error, e.message);
      }
      propose(null);
      file.click();
    });
  }

  function settings() {
    handwriting();
    $("pin-change").addEventListener("submit", async (event) => {
      event.preventDefault();
      const error = $("pin-change-error");
      if ($("new-pin").value !== $("new-pin-again").value) return show(error, msg("settings.pins_differ"));
      try {
        await api("POST", "/m/api/pin", { old_pin: $("old-pin").value, new_pin: $("new-pin").value });
        show(error, "");
        event.target.reset();
        flash(msg("settings.pin_changed"));
      } catch (e) {
        show(error, e.message);
      }
    });
    for (const button of document.querySelectorAll(".unbind")) {
      button.addEventListener("click", async () => {
        try {
          await api("DELETE", "/m/api/devices/" + encodeURIComponent(button.dataset.id));
          location.reload();
        } catch (e) {
          flash(e.message);
        }
      });
    }
    const add = $("passkey-add");
    if (add) {
      add.addEventListener("click", async () => {
        const error = $("passkey-error");
        try {
          const credential = await createPasskey(await api("POST", "/m/api/passkeys/options"));
          await api("POST", "/m/api/passkeys", { credential: credential, label: $("passkey-label").value || "passkey" });
          location.reload();
        } catch (e) {
          show(error, e.message);
        }
      });
    }
    for (const button of document.querySelectorAll(".passkey-revoke")) {
      button.addEventListener("click", async () => {
        await api("DELETE", "/m/api/passkeys/" + encodeURIComponent(button.dataset.id));
        location.reload();
      });
    }
    $("logout").addEventListener("click", async () => {
      await api("POST", "/m/api/logout");
      location.assign("/m/unlock");
    });
  }

  function unlock() {
    $("unlock-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await api("POST", "/m/api/unlock", { pin: $("unlock-pin").value });
        location.assign(data.next);
      } catch (e) {
        show($("unlock-error"), e.message);
        $("unlock-pin").value = "";
      }
    });
  }

  function enrol() {
    const base = "/m/api/enrolments/" + encodeURIComponent(data.token);
    const steps = { "start": "step-start", "code-sent": "step-code", "code-verified": "step-identity",
                    "identity-confirmed": "step-pin", "done": "step-done" };
    const error = $("enrol-error");
    function go(view) {
      for (const id of Object.values(steps)) $(id).hidden = true;
      const step = steps[view.step] || "step-start";
      $(step).hidden = false;
      if (view.step === "code-sent") show($("code-sent"), msg("enrol.code_sent", { phone: view.phone_masked || data.phone }));
      const field = $(step).querySelector("input");
      if (field) field.focus();
    }
    async function run(call) {
      try {
        show(error, "");
        go(await call());
      } catch (e) {
        show(error, e.message);
      }
    }
    $("send-code").addEventListener("click", () => run(() => api("POST", base + "/send-code")));
    $("step-code").addEventListener("submit", (event) => {
      event.preventDefault();
      run(() => api("POST", base + "/verify-code", { code: $("code").value }));
    });
    $("step-identity").addEventListener("submit", (event) => {
      event.preventDefault();
      run(() => api("POST", base + "/confirm-identity", { national_id: $("national-id").value }));
    });
    $("step-pin").addEventListener("submit", (event) => {
      event.preventDefault();
      if ($("new-pin").value !== $("new-pin-again").value) return show(error, msg("settings.pins_differ"));
      run(async () => {
        const body = { pin: $("new-pin").value };
        if (data.key_location === "device") body.device_key = await makeDeviceKey(data.enrolment_id);
        return api("POST", base + "/pin", body);
      });
    });
    go({ step: data.step, phone_masked: data.phone });
  }

  function login() {
    const decide = async (decision) => {
      try {
        const result = await api("POST", "/m/api/logins/" + encodeURIComponent(data.id) + "/" + decision);
        show($("login-result"), msg(result.state === "approved" ? "login.approved" : "login.declined"));
      } catch (e) {
        const known = { "login-expired": "login.expired", "login-decided": "login.used", "login-declined": "login.used" };
        show($("login-result"), known[e.code] ? msg(known[e.code]) : e.message);
      }
      $("login-decide").hidden = true;
    };
    if (!$("approve")) return;
    $("approve").addEventListener("click", () => decide("approve"));
    $("decline").addEventListener("click", () => decide("decline"));
  }

  // Times are sent in UTC; the phone shows them in its own time zone and language.
  for (const element of document.querySelectorAll("time[datetime]")) {
    const when = new Date(element.getAttribute("datetime"));
    if (!isNaN(when)) element.textContent = when.toLocaleString(data.lang, { hour12: false });
  }

  const pages = { home, request, settings, unlock, enrol, login };
  if (pages[data.page]) pages[data.page]();
})();
