// Light or dark, as on the hub's pages (JupyterHub's static/js/darkmode.js): the choice made with the hub's toggle
// is kept in localStorage under the hub's key, which these pages share (same origin), else the system's setting.
(() => {
  const key = "jupyterhub-bs-theme";
  const systemDark = window.matchMedia("(prefers-color-scheme: dark)");
  const stored = () => {
    try {
      return localStorage.getItem(key);
    } catch (error) {
      return null;
    }
  };
  const apply = () => {
    const theme = stored();
    const chosen = theme === "light" || theme === "dark" ? theme : systemDark.matches ? "dark" : "light";
    document.documentElement.setAttribute("data-bs-theme", chosen);
  };
  apply();
  systemDark.addEventListener("change", apply);
  window.addEventListener("DOMContentLoaded", () => {
    const toggle = document.getElementById("dark-theme-toggle");
    if (!toggle) return;
    toggle.addEventListener("click", () => {
      const next = document.documentElement.getAttribute("data-bs-theme") === "dark" ? "light" : "dark";
      try {
        localStorage.setItem(key, next);
      } catch (error) {}
      document.documentElement.setAttribute("data-bs-theme", next);
    });
  });
})();
