// The public verification page: files are read in the browser and sent as base64 JSON.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("page-data").textContent);
  const $ = (id) => document.getElementById(id);
  const msg = (key) => data.messages[key] || key;
  const read = (file) => new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result.split(",", 2)[1] || "");
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function render(report) {
    const section = element("section", "card report verdict-" + report.indication);
    section.id = "report";
    const cls = { passed: "state-signed", failed: "state-rejected", indeterminate: "state-pending" };
    const verdict = element("p", "verdict state " + cls[report.indication], msg("verify." + report.indication));
    verdict.id = "verdict";
    section.append(verdict);
    if (report.sub_indication) section.append(element("p", "meta", report.sub_indication));
    if (report.signer) {
      const signer = element("p", "summary", report.signer.common_name || report.signer.subject);
      signer.id = "signer";
      section.append(signer);
    }
    if (report.signing_time) {
      section.append(element("p", "meta", msg("verify.time") + ": " +
        new Date(report.signing_time).toLocaleString(data.lang, { hour12: false }) + " (" + report.signing_time_source + ")"));
    }
    section.append(element("h2", "", msg("verify.checks")));
    const list = element("ul", "list checks");
    list.id = "checks";
    for (const check of report.checks) {
      const item = element("li", "item check-" + check.indication);
      const body = element("span", "body");
      body.append(element("span", "scene", check.name + " · " + msg("verify." + check.indication)));
      body.append(element("span", "meta", check.message));
      item.append(body);
      list.append(item);
    }
    section.append(list);
    $("result").replaceChildren(section);
  }

  $("verify-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = $("verify-error");
    error.hidden = true;
    $("result").replaceChildren();
    try {
      const body = { cms: await read($("signature-file").files[0]) };
      if ($("data-file").files.length) body.data = await read($("data-file").files[0]);
      const response = await fetch("/v/api/verify", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      const parsed = await response.json();
      if (!response.ok) throw new Error(parsed.detail || parsed.title || msg("common.error"));
      render(parsed);
    } catch (e) {
      error.textContent = e.message;
      error.hidden = false;
    }
  });
})();
