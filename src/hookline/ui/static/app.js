// hookline's small enhancements; every page works without them.
"use strict";

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(source.textContent);
    button.textContent = "Copied";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Selected: press Ctrl+C";
  }
  setTimeout(() => { button.textContent = label; }, 1500);
});

document.addEventListener("input", (event) => {
  if (!event.target.matches("[data-filter-topics]")) return;
  const words = event.target.value.toLowerCase().trim();
  for (const topic of document.querySelectorAll(".topic[data-topic]")) {
    topic.hidden = words !== "" && !topic.dataset.topic.toLowerCase().includes(words);
  }
});

// a test inbox's requests refresh by themselves while the page is open
const poll = document.querySelector("[data-poll]");
if (poll && poll.dataset.poll) {
  setInterval(async () => {
    if (document.hidden) return;
    const response = await fetch(poll.dataset.poll, { headers: { "Accept": "text/html" } });
    if (response.ok) {
      const html = await response.text();
      if (html !== poll.dataset.last) {
        poll.dataset.last = html;
        poll.innerHTML = html;
      }
    }
  }, 2000);
}
