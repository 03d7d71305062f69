// The service worker's side in the page: on a signed-in person's page, /sw.js is registered
// for the whole dashboard (scope /) and told whose page this is (body data-user and
// data-tenant-id), so that it drops what it kept of someone else's. A page of nobody's (sign-in,
// signed out) tells an already running worker so, and it drops what it kept. Without service
// workers (an old browser, a page not served over https), nothing changes: the dashboard needs
// the connection, as before.

const { user, tenantId } = document.body.dataset
const workers = navigator.serviceWorker

function tell (worker) {
  worker?.postMessage({ type: 'owner', user: user || null, tenant: tenantId || null })
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
