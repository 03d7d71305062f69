// The offline queue's IndexedDB database, through a small promise wrapper over the raw API:
// `owners` (per person and tenant: the client id and the next sequence number) and `items`
// (the changes waiting, by owner).

const NAME = 'seedos-offline-queue'
const VERSION = 1
let opened = null

function open () {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(NAME, VERSION)
    request.onupgradeneeded = () => {
      const db = request.result
      db.createObjectStore('owners', { keyPath: 'owner' })
      db.createObjectStore('items', { keyPath: 'id', autoIncrement: true }).createIndex('owner', 'owner')
    }
    request.onsuccess = () => {
      const db = request.result
      db.onversionchange = () => { db.close(); opened = null }
      resolve(db)
    }
    request.onerror = () => reject(request.error)
    request.onblocked = () => reject(new Error('The offline queue is open in an older version of this page elsewhere.'))
  })
}

// one request's result
export const done = (request) => new Promise((resolve, reject) => {
  request.onsuccess = () => resolve(request.result)
  request.onerror = () => reject(request.error)
})

// fn({owners, items}) in one transaction (it may await only this transaction's requests); its
// result once the transaction has committed. Anything thrown aborts it: nothing is written.
export async function tx (fn, mode = 'readwrite') {
  if (!opened) opened = open().catch((error) => { opened = null; throw error })
  const db = await opened
  const t = db.transaction(['owners', 'items'], mode)
  const committed = new Promise((resolve, reject) => {
    t.oncomplete = resolve
    t.onerror = () => reject(t.error)
    t.onabort = () => reject(t.error || new Error('The offline queue could not be written.'))
  })
  let result
  try {
    result = await fn({ owners: t.objectStore('owners'), items: t.objectStore('items') })
  } catch (error) {
    committed.catch(() => {})
    try { t.abort() } catch (_) { /* already finished */ }
    throw error
  }
  await committed
  return result
}

// every item of `owner`, by sequence number
export async function itemsOf (stores, owner) {
  const all = await done(stores.items.index('owner').getAll(owner))
  return all.sort((a, b) => a.seq - b.seq || a.id - b.id)
}
