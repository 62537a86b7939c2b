// Rempart portal: passkey ceremonies (WebAuthn). Served as a static file: the CSP allows no
// inline script. The server sends the options (JSON, binary fields in base64url) with a
// ceremony id; we call the browser and send its answer back with that id.
"use strict";

(function () {
  function toBytes(b64url) {
    const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  }

  function toB64url(buffer) {
    let bin = "";
    new Uint8Array(buffer).forEach((b) => { bin += String.fromCharCode(b); });
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(o) {
    return Object.assign({}, o, {
      challenge: toBytes(o.challenge),
      user: Object.assign({}, o.user, { id: toBytes(o.user.id) }),
      excludeCredentials: (o.excludeCredentials || []).map((c) => Object.assign({}, c, { id: toBytes(c.id) })),
    });
  }

  function requestOptions(o) {
    return Object.assign({}, o, {
      challenge: toBytes(o.challenge),
      allowCredentials: (o.allowCredentials || []).map((c) => Object.assign({}, c, { id: toBytes(c.id) })),
    });
  }

  function attestationJSON(cred) {
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        clientDataJSON: toB64url(cred.response.clientDataJSON),
        attestationObject: toB64url(cred.response.attestationObject),
        transports: cred.response.getTransports ? cred.response.getTransports() : [],
      },
      clientExtensionResults: cred.getClientExtensionResults(),
    };
  }

  function assertionJSON(cred) {
    const r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        clientDataJSON: toB64url(r.clientDataJSON),
        authenticatorData: toB64url(r.authenticatorData),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null,
      },
      clientExtensionResults: cred.getClientExtensionResults(),
    };
  }

  function headers() {
    const h = { "Content-Type": "application/json", Accept: "application/json" };
    const meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) h["X-CSRF-Token"] = meta.content;
    return h;
  }

  async function post(url, body) {
    const r = await fetch(url, {
      method: "POST", headers: headers(), body: JSON.stringify(body || {}),
      credentials: "same-origin",
    });
    const data = await r.json().catch(() => ({}));
    if (r.status === 403 && data.code === "step_up_required") {
      // a sensitive action: confirm with the passkey first, then come back here
      window.location.assign("/portail/confirmer?retour=" + encodeURIComponent(window.location.pathname));
      throw new Error("Confirmation de votre identité nécessaire…");
    }
    if (!r.ok) throw new Error(data.detail || "La demande a été refusée.");
    return data;
  }

  function say(root, text, kind) {
    const el = root.querySelector("[data-passkey-message]") || document.querySelector("[data-passkey-message]");
    if (!el) return;
    el.textContent = text;
    el.className = "message " + (kind || "");
  }

  function browserError(e) {
    if (e && e.name === "NotAllowedError") return "Opération annulée ou refusée par l'appareil. Réessayez.";
    if (e && e.name === "InvalidStateError") return "Cette clé d'accès est déjà enregistrée pour votre compte.";
    return (e && e.message) || "Une erreur est survenue.";
  }

  async function signIn(button) {
    const root = button.closest("section") || document;
    button.disabled = true;
    say(root, "Confirmez votre identité sur votre appareil…", "");
    try {
      const c = await post(button.dataset.optionsUrl);
      const cred = await navigator.credentials.get({ publicKey: requestOptions(c.options) });
      const done = await post(button.dataset.verifyUrl, { ceremony_id: c.ceremony_id, credential: assertionJSON(cred) });
      say(root, button.dataset.passkey === "stepup" ? "Identité confirmée." : "Connexion réussie.", "ok");
      window.location.assign(done.redirect);
    } catch (e) {
      say(root, browserError(e), "off");
      button.disabled = false;
    }
  }

  async function register(form) {
    const button = form.querySelector('button[type="submit"]');
    const name = form.querySelector('input[name="name"]');
    button.disabled = true;
    say(form, "Confirmez votre identité sur votre appareil…", "");
    try {
      const c = await post(form.dataset.optionsUrl);
      const cred = await navigator.credentials.create({ publicKey: creationOptions(c.options) });
      const done = await post(form.dataset.verifyUrl, {
        ceremony_id: c.ceremony_id, credential: attestationJSON(cred), name: name ? name.value : "",
      });
      say(form, "Clé d'accès enregistrée.", "ok");
      window.location.assign(done.redirect);
    } catch (e) {
      say(form, browserError(e), "off");
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    const supported = !!(window.PublicKeyCredential && navigator.credentials);
    document.querySelectorAll('[data-passkey="signin"], [data-passkey="stepup"]').forEach((b) => {
      if (!supported) { b.disabled = true; say(document, "Ce navigateur ne prend pas en charge les clés d'accès.", "off"); return; }
      b.addEventListener("click", () => signIn(b));
    });
    document.querySelectorAll('[data-passkey-form="register"]').forEach((f) => {
      f.addEventListener("submit", (ev) => { ev.preventDefault(); register(f); });
    });
    document.querySelectorAll("[data-print]").forEach((b) => {
      b.addEventListener("click", () => window.print());
    });
    // a form with data-confirm asks before it is sent (approving a run, refusing a PEC…)
    document.querySelectorAll("form[data-confirm]").forEach((f) => {
      f.addEventListener("submit", (ev) => { if (!window.confirm(f.dataset.confirm)) ev.preventDefault(); });
    });
  });
})();
