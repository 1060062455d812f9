// The chat page of `cocreate try`: one chat per person, over the emulator's member API
// (/_emu/...). Plain JavaScript, no build step, nothing fetched from elsewhere. A person
// whose channel is "sms" gets a plain phone thread instead (/_emu/sms/...): bubbles and a
// text box, no buttons, no commands, no photos.
"use strict";

const POLL_SECONDS = 25;

const page = {
  people: [],
  person: null, // the person whose chat is shown
  messages: new Map(), // message_id -> message, this chat only
  after: 0, // highest message_id seen
  since: 0, // highest version seen (edits)
  generation: 0, // bumped on every switch, so an old long poll stops
  abort: null,
  seen: {}, // chat id -> messages the bot had sent when last shown
  sent: null, // chat id -> messages the bot has sent, as the emulator last said
  smsSent: {}, // phone number -> texts the bot has sent it, as the emulator last said
  smsVersion: 0, // the SMS stand-in's version when the thread was last read
  stick: true, // keep the newest message in view (until the reader scrolls up to read)
  scrolledTo: null, // where the page last scrolled itself
};

const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.error || `${response.status} ${response.statusText}`);
  }
  return body;
}

function post(path, body) {
  return api(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

function pause(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function say(text) {
  $("status").textContent = text;
}

function isSms(person) {
  return person.channel === "sms";
}

function threadPath(person) {
  return `/_emu/sms/${encodeURIComponent(person.number)}/thread`;
}

// ---- keeping the newest message in view

function nearBottom() {
  const scroller = document.scrollingElement;
  return window.innerHeight + scroller.scrollTop >= scroller.scrollHeight - 80;
}

// Scrolls to the end if the chat is following the newest message.
function keepNewest() {
  if (!page.stick) return;
  const scroller = document.scrollingElement;
  window.scrollTo(0, scroller.scrollHeight);
  page.scrolledTo = scroller.scrollTop;
}

// The reader acted (sent, tapped, switched): show the newest message from now on.
function toNewest() {
  page.stick = true;
  keepNewest();
}

// Only the reader's own scrolling changes whether the chat follows. The page growing (a
// photo loading, buttons coming or going) does not: a scroll event comes a frame late, so
// the page's own scroll to the end may read as "not at the end" once a photo has loaded
// in between; the page remembers where it went and does not count that as the reader's.
function readerScrolled() {
  if (document.scrollingElement.scrollTop === page.scrolledTo) return;
  page.scrolledTo = null;
  page.stick = nearBottom();
}

function watchScrolling() {
  window.addEventListener("scroll", readerScrolled, { passive: true });
  window.addEventListener("resize", keepNewest);
  const growing = new ResizeObserver(keepNewest);
  growing.observe($("messages"));
  growing.observe(document.querySelector(".composer"));
}

// ---- who you are

async function loadPeople() {
  page.people = await api("/_emu/people");
  const select = $("who");
  select.replaceChildren(
    ...page.people.map((person) => {
      const option = document.createElement("option");
      option.value = String(person.id);
      option.textContent = label(person);
      return option;
    }),
  );
  const wanted = Number(new URLSearchParams(location.hash.slice(1)).get("as"));
  const first = page.people.find((p) => p.id === wanted) || page.people[0];
  if (first) {
    select.value = String(first.id);
    await show(first);
  }
}

// How the switch names someone: "Ana (member)", "Sam (SMS)".
function label(person) {
  return isSms(person) ? `${person.name} (SMS)` : `${person.name} (${person.role})`;
}

async function show(person) {
  page.generation += 1;
  if (page.abort) page.abort.abort();
  page.person = person;
  const sms = isSms(person);
  // Tells `cocreate try` the chat is open (it sends staff a sign-in link the first time).
  if (!sms) post(`/_emu/chats/${person.id}/opened`, {}).catch(() => {});
  page.messages.clear();
  page.after = 0;
  page.since = 0;
  page.smsVersion = 0;
  history.replaceState(null, "", `#as=${person.id}`);
  $("hint").textContent = person.hint || "";
  drawFirstSteps(person);
  drawChannel(person);
  const list = $("messages");
  list.setAttribute("aria-busy", "true");
  list.replaceChildren();
  const generation = page.generation;
  try {
    if (sms) {
      const thread = await api(threadPath(person));
      if (generation !== page.generation) return;
      mergeThread(thread);
    } else {
      const messages = await api(`/_emu/chats/${person.id}/messages?all=1`);
      if (generation !== page.generation) return;
      merge(messages);
    }
    say("");
  } catch (error) {
    say(`Could not load the chat: ${error.message}`);
  } finally {
    if (generation === page.generation) list.removeAttribute("aria-busy");
  }
  render();
  toNewest();
  if (sms) {
    followThread(generation);
  } else {
    loadCommands();
    follow(generation);
  }
}

// A Telegram chat, or a plain phone thread: what the page around the messages offers.
function drawChannel(person) {
  const sms = isSms(person);
  document.body.classList.toggle("sms", sms);
  const what = sms ? "texts" : "chat";
  $("chat-title").textContent = `${person.name}'s ${what} with the bot`;
  document.title = `${person.name} – Try cocreate`;
  const box = sms ? "Text message" : "Message";
  $("text-label").textContent = box;
  $("text").placeholder = box;
  $("attach").hidden = sms;
  $("phone-bar").hidden = true;
  if (sms) {
    $("keyboard").hidden = true;
    $("commands").hidden = true;
  }
}

// ---- following the chat

async function follow(generation) {
  while (generation === page.generation) {
    page.abort = new AbortController();
    const id = page.person.id;
    const query = `after=${page.after}&since=${page.since}&all=1&timeout=${POLL_SECONDS}`;
    const started = Date.now();
    try {
      const messages = await api(`/_emu/chats/${id}/wait?${query}`, {
        signal: page.abort.signal,
      });
      if (generation !== page.generation) return;
      if (!messages.length && Date.now() - started < 1000) {
        await pause(1000); // an early empty answer: the emulator is stopping
      }
      if (messages.length) {
        merge(messages);
        render();
        keepNewest();
        loadCommands();
      }
      say("");
    } catch (error) {
      if (generation !== page.generation) return;
      say("Lost touch with cocreate try. Is it still running? Trying again…");
      await pause(2000);
    }
  }
}

// ---- following a phone thread

async function followThread(generation) {
  while (generation === page.generation) {
    page.abort = new AbortController();
    const query = `since=${page.smsVersion}&timeout=${POLL_SECONDS}`;
    const started = Date.now();
    try {
      const thread = await api(`${threadPath(page.person)}?${query}`, {
        signal: page.abort.signal,
      });
      if (generation !== page.generation) return;
      if (thread.version <= page.smsVersion && Date.now() - started < 1000) {
        await pause(1000); // an early answer with nothing new: the emulator is stopping
      }
      if (thread.version > page.smsVersion) {
        mergeThread(thread);
        render();
        keepNewest();
      }
      say("");
    } catch (error) {
      if (generation !== page.generation) return;
      say("Lost touch with cocreate try. Is it still running? Trying again…");
      await pause(2000);
    }
  }
}

// A thread only grows, so a text's place in it is its id. Texts become messages as the
// chat draws them; `version` changes only with what the bubble shows.
function mergeThread(thread) {
  page.smsVersion = thread.version;
  const bar = $("phone-bar");
  bar.textContent = `Texts with the bot's number, ${thread.number}`;
  bar.hidden = false;
  thread.texts.forEach((text, index) => {
    const note = textNote(text);
    page.messages.set(index + 1, {
      message_id: index + 1,
      from_bot: !text.from_me,
      text: text.text,
      kind: "text",
      note,
      reply_markup: null,
      deleted: false,
      version: note || "",
    });
  });
}

// Under a text: a picture sent (MMS), or the bot's web app not taking the text.
function textNote(text) {
  const notes = [];
  if (text.media && text.media.length) notes.push("(a picture)");
  if (text.error) notes.push("Not sent: the bot did not answer.");
  else if (text.answered && text.answered >= 400) {
    notes.push(`The bot did not take this text (HTTP ${text.answered}).`);
  }
  return notes.join(" ");
}

function merge(messages) {
  for (const message of messages) {
    page.after = Math.max(page.after, message.message_id);
    page.since = Math.max(page.since, message.version);
    page.messages.set(message.message_id, message);
  }
}

// ---- drawing

function render() {
  const list = $("messages");
  const ordered = [...page.messages.values()]
    .filter((m) => !m.deleted)
    .sort((a, b) => a.message_id - b.message_id);
  for (const message of ordered) {
    const id = `m${message.message_id}`;
    const old = document.getElementById(id);
    const key = `${message.version}`;
    if (old && old.dataset.version === key) continue;
    const item = drawMessage(message);
    item.id = id;
    item.dataset.version = key;
    if (old) old.replaceWith(item);
    else list.append(item);
  }
  for (const message of page.messages.values()) {
    if (message.deleted) document.getElementById(`m${message.message_id}`)?.remove();
  }
  // The first steps stay until the person has sent something: a message the bot sent first
  // (a sign-in link in `cocreate try`) does not take them away.
  $("empty").hidden = ordered.some((m) => !m.from_bot);
  drawKeyboard(ordered);
  page.seen[page.person.id] = ordered.filter((m) => m.from_bot).length;
  drawNews();
}

function drawMessage(message) {
  const item = document.createElement("li");
  item.className = message.from_bot ? "message from-bot" : "message from-me";
  const who = document.createElement("span");
  who.className = "visually-hidden";
  who.textContent = message.from_bot ? "The bot: " : "You: ";
  item.append(who);

  // Same origin as the page, whichever name it was opened by (127.0.0.1 or localhost).
  const url = message.file_url && new URL(message.file_url, location.href).pathname;
  if (url && message.kind === "photo") {
    const img = document.createElement("img");
    img.src = url;
    img.alt = message.text ? `A photo: ${message.text}` : "A photo";
    item.append(img);
  } else if (url && (message.kind === "voice" || message.kind === "audio")) {
    const audio = document.createElement("audio");
    audio.controls = true;
    audio.src = url;
    audio.setAttribute("aria-label", message.kind === "voice" ? "Voice note" : "Audio");
    item.append(audio);
  } else if (url) {
    const link = document.createElement("a");
    link.className = "file-link";
    link.href = url;
    link.download = message.file_name || "file";
    link.textContent = `Download ${message.file_name || "the file"}`;
    item.append(link);
  } else if (message.kind !== "text") {
    const note = document.createElement("p");
    note.className = "small";
    note.textContent = `(a ${message.kind.replace("_", " ")})`;
    item.append(note);
  }
  if (message.text) {
    const text = document.createElement("p");
    text.className = "text";
    text.textContent = message.text;
    item.append(text);
  }
  if (message.note) {
    const note = document.createElement("p");
    note.className = "small";
    note.textContent = message.note;
    item.append(note);
  }
  const inline = message.reply_markup && message.reply_markup.inline_keyboard;
  if (inline && inline.length) item.append(drawInline(message, inline));
  return item;
}

function drawInline(message, rows) {
  const box = document.createElement("div");
  box.className = "inline";
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", "Buttons");
  for (const row of rows) {
    const line = document.createElement("div");
    line.className = "row";
    for (const button of row) {
      if (button.url) {
        const link = document.createElement("a");
        link.className = "button";
        link.href = button.url;
        link.target = "_blank";
        link.rel = "noopener";
        link.textContent = button.text;
        line.append(link);
        continue;
      }
      const element = document.createElement("button");
      element.type = "button";
      element.textContent = button.text;
      element.addEventListener("click", () =>
        act(element, () =>
          post(`/_emu/users/${page.person.id}/press`, {
            data: button.callback_data,
            message_id: message.message_id,
          }),
        ),
      );
      line.append(element);
    }
    box.append(line);
  }
  return box;
}

// What an empty chat offers: Start for a member, the role's own commands for staff.
function drawFirstSteps(person) {
  $("intro").textContent = person.intro || "This is the start of your chat with the bot.";
  $("first-steps").hidden = !(person.steps && person.steps.length);
  $("first-steps").replaceChildren(
    ...(person.steps || []).map((step) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "big";
      button.textContent = step.label;
      button.addEventListener("click", () => sendText(step.text, button));
      return button;
    }),
  );
}

// The reply keyboard under the message box: the newest one the bot sent, until removed.
function drawKeyboard(ordered) {
  const box = $("keyboard");
  let rows = null;
  for (const message of [...ordered].reverse()) {
    const markup = message.from_bot && message.reply_markup;
    if (!markup) continue;
    if (markup.remove_keyboard) break;
    if (markup.keyboard) {
      rows = markup.keyboard;
      break;
    }
  }
  box.replaceChildren();
  box.hidden = !rows;
  if (!rows) return;
  for (const row of rows) {
    const line = document.createElement("div");
    line.className = "row";
    for (const button of row) {
      const text = typeof button === "string" ? button : button.text;
      const element = document.createElement("button");
      element.type = "button";
      element.textContent = text;
      element.addEventListener("click", () =>
        act(element, () => post(`/_emu/users/${page.person.id}/press`, { text })),
      );
      line.append(element);
    }
    box.append(line);
  }
}

async function loadCommands() {
  const person = page.person;
  let commands = [];
  try {
    commands = await api(`/_emu/chats/${person.id}/commands`);
  } catch {
    return;
  }
  if (person !== page.person) return;
  // Staff on this page are not members: joining is not theirs to try.
  if (person.role !== "member") commands = commands.filter((c) => c.command !== "start");
  const list = $("command-list");
  list.replaceChildren(
    ...commands.map((c) => {
      const item = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "command";
      button.textContent = `/${c.command}`;
      const description = document.createElement("span");
      description.textContent = c.description;
      button.append(" ", description);
      button.addEventListener("click", () => {
        $("commands").open = false;
        sendText(`/${c.command}`, button);
      });
      item.append(button);
      return item;
    }),
  );
  $("commands").hidden = commands.length === 0;
}

// ---- acting

// Everything the reader sends or taps goes through here, so the chat shows what follows.
async function act(element, action) {
  toNewest();
  if (element) element.disabled = true;
  try {
    await action();
    say("");
  } catch (error) {
    say(`That did not work: ${error.message}`);
  } finally {
    if (element) element.disabled = false;
  }
}

function sendText(text, element) {
  const person = page.person;
  if (isSms(person)) {
    // The member texts the bot's number: the SMS stand-in posts it to the bot, signed.
    const path = `/_emu/sms/${encodeURIComponent(person.number)}/send`;
    return act(element, () => post(path, { text }));
  }
  return act(element, () =>
    post(`/_emu/users/${person.id}/send`, { text, first_name: person.name }),
  );
}

async function upload(kind, input) {
  const file = input.files && input.files[0];
  if (!file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  // A photo takes what is in the message box as its caption.
  const caption = $("text").value.trim();
  if (caption && kind === "photo") form.append("caption", caption);
  if (kind === "voice") form.append("duration", String(await duration(file)));
  await act(null, async () => {
    await api(`/_emu/users/${page.person.id}/${kind}`, { method: "POST", body: form });
    if (caption && kind === "photo") $("text").value = "";
  });
  input.value = "";
}

// A voice note's length in whole seconds, read by the browser (3 if it cannot tell).
function duration(file) {
  return new Promise((resolve) => {
    const audio = document.createElement("audio");
    const url = URL.createObjectURL(file);
    const done = (seconds) => {
      URL.revokeObjectURL(url);
      resolve(Number.isFinite(seconds) && seconds > 0 ? Math.max(1, Math.round(seconds)) : 3);
    };
    audio.preload = "metadata";
    audio.addEventListener("loadedmetadata", () => done(audio.duration));
    audio.addEventListener("error", () => done(NaN));
    setTimeout(() => done(NaN), 2000);
    audio.src = url;
  });
}

// Marks people whose chat has news, from the emulator's count of messages sent to each.
async function watchOthers() {
  try {
    const state = await api("/_emu/state");
    page.sent = state.sent;
    page.smsSent = state.sms_sent || {};
  } catch {
    return; // the status line already says when the try has stopped
  }
  drawNews();
}

function drawNews() {
  if (!page.sent) return;
  for (const option of $("who").options) {
    const person = page.people.find((p) => String(p.id) === option.value);
    if (!person) continue;
    const sent = (isSms(person) ? page.smsSent[person.number] : page.sent[option.value]) || 0;
    if (page.seen[person.id] === undefined) page.seen[person.id] = sent;
    const news = person !== page.person && sent > page.seen[person.id];
    option.textContent = `${label(person)}${news ? " – new messages" : ""}`;
  }
}

function start() {
  $("who").addEventListener("change", (event) => {
    const person = page.people.find((p) => String(p.id) === event.target.value);
    if (person) show(person);
  });
  $("send-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const box = $("text");
    const text = box.value.trim();
    if (!text) return;
    box.value = "";
    sendText(text, null);
  });
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("send-form").requestSubmit();
    }
  });
  $("voice").addEventListener("change", (event) => upload("voice", event.target));
  $("photo").addEventListener("change", (event) => upload("photo", event.target));
  watchScrolling();
  loadPeople().catch((error) => say(`Could not reach cocreate try: ${error.message}`));
  setInterval(watchOthers, 3000);
}

start();
