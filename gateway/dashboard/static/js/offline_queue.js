// The offline queue (IndexedDB, behind act()): to be built.
