// The Strata console's only script (no inline code: the pages' Content-Security-Policy forbids it).
// - forms with data-confirm ask before they submit; buttons with data-copy copy their text;
// - the drop zone on a bucket page uploads files straight from the browser: the console starts a
//   multipart upload as the signed-in identity, hands out presigned part URLs, and the browser PUTs
//   each part to S3 itself (XMLHttpRequest, for upload progress), then asks the console to complete.
"use strict";

document.addEventListener("submit", (event) => {
  const question = event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});

// "Copy" buttons next to connection strings.
document.addEventListener("click", (event) => {
  const text = event.target.getAttribute && event.target.getAttribute("data-copy");
  if (text === null || text === undefined) return;
  navigator.clipboard.writeText(text).then(() => { event.target.textContent = "Copied"; });
});

function mib(n) { return (n / 1048576).toFixed(1) + " MiB"; }

async function step(zone, body) {
  const response = await fetch(zone.dataset.endpoint, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": zone.dataset.csrf },
    body: JSON.stringify(body),
  });
  const doc = await response.json();
  if (!response.ok) throw new Error((doc.code || response.status) + ": " + (doc.message || ""));
  return doc;
}

function putPart(urlToPut, blob, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", urlToPut);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(xhr.getResponseHeader("ETag"));
      else reject(new Error("part upload failed: HTTP " + xhr.status + " " + xhr.responseText.slice(0, 300)));
    };
    xhr.onerror = () => reject(new Error("part upload failed: network error"));
    xhr.send(blob);
  });
}

async function uploadFile(zone, file, progress, status, done, total) {
  const partSize = Number(zone.dataset.partSize);
  const key = zone.dataset.prefix + file.name;
  const base = { bucket: zone.dataset.bucket, key: key };
  const count = Math.max(1, Math.ceil(file.size / partSize));
  const created = await step(zone, { ...base, action: "create", content_type: file.type });
  const uploadId = created.uploadId;
  const parts = [];
  try {
    for (let first = 1; first <= count; first += 100) {
      const numbers = [];
      for (let n = first; n < first + 100 && n <= count; n++) numbers.push(n);
      const signed = await step(zone, { ...base, action: "parts", uploadId: uploadId, parts: numbers });
      for (const n of numbers) {
        const blob = file.slice((n - 1) * partSize, Math.min(file.size, n * partSize));
        const before = done.bytes;
        const etag = await putPart(signed.urls[n], blob, (loaded) => {
          progress.value = before + loaded;
          status.textContent = "Uploading " + key + ": " + mib(before + loaded) + " of " + mib(total);
        });
        done.bytes = before + blob.size;
        progress.value = done.bytes;
        parts.push({ PartNumber: n, ETag: etag });
      }
    }
    await step(zone, { ...base, action: "complete", uploadId: uploadId, parts: parts });
  } catch (error) {
    await step(zone, { ...base, action: "abort", uploadId: uploadId }).catch(() => {});
    throw error;
  }
}

async function uploadAll(zone, files) {
  const progress = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const total = files.reduce((sum, f) => sum + f.size, 0);
  const done = { bytes: 0 };
  progress.hidden = false;
  progress.max = Math.max(1, total);
  progress.value = 0;
  try {
    for (const file of files) await uploadFile(zone, file, progress, status, done, total);
    progress.value = progress.max;
    status.textContent = "Uploaded " + files.length + " file(s), " + mib(total) + ". ";
    const refresh = document.createElement("a");
    refresh.href = zone.dataset.done;
    refresh.id = "upload-refresh";
    refresh.textContent = "Show the listing";
    status.appendChild(refresh);
    zone.dataset.state = "done";
  } catch (error) {
    status.textContent = "Upload failed: " + error.message;
    zone.dataset.state = "failed";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const zone = document.getElementById("dropzone");
  if (!zone) return;
  const input = document.getElementById("bigfiles");
  input.addEventListener("change", () => uploadAll(zone, Array.from(input.files)));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    uploadAll(zone, Array.from(e.dataTransfer.files));
  });
});
