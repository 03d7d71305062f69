// The service worker's side in the page (its registration): to be built.
