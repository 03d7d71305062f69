// The service worker's side in the page: on a signed-in person's page, /sw.js is registered
// for the whole dashboard (scope /) and told whose page this is (body data-user and
// data-tenant-id) and until when (the session's absolute end, data-session-absolute), so that it
// drops what it kept of someone else's, and what it kept of a session that is over. A page of nobody's (sign-in,
// signed out) tells an already running worker so, and it drops what it kept. Without service
// workers (an old browser, a page not served over https), nothing changes: the dashboard needs
// the connection, as before.

const { user, tenantId, sessionAbsolute } = document.body.dataset
const workers = navigator.serviceWorker

// `until`: the session's absolute end, after which its copies are shown to no one
function tell (worker) {
  worker?.postMessage({ type: 'owner', user: user || null, tenant: tenantId || null, until: sessionAbsolute || null })
}

if (workers) {
  if (user) {
    workers.register('/sw.js', { scope: '/' })
      .then(() => workers.ready)
      .then((registration) => tell(registration.active))
      .catch(() => { /* no service worker here: the pages work online only */ })
  } else {
    tell(workers.controller)
  }
}
