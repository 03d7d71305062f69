// Runs before the page paints (a classic script in <head>): the theme the person chose, if any.
try {
  const chosen = localStorage.getItem('seedos-theme')
  if (chosen === 'dark' || chosen === 'light') document.documentElement.dataset.theme = chosen
} catch (_) { /* storage refused: the system's theme */ }
