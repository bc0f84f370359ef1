// Starts Swagger UI on the document next to this page (nauth's API page).
window.addEventListener("load", function () {
  var base = window.location.pathname.replace(/\/docs\/?$/, "");
  window.ui = SwaggerUIBundle({
    url: base + "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    withCredentials: true,
    persistAuthorization: false,
    tryItOutEnabled: true,
    validatorUrl: null,
    requestInterceptor: function (req) {
      // Cookie delivery: send the CSRF cookie back as the header on unsafe methods.
      var m = document.cookie.match(/(?:^|; )([A-Za-z0-9_-]*csrf_token)=([^;]*)/);
      if (m && !/^(GET|HEAD|OPTIONS)$/i.test(req.method || "GET")) {
        req.headers["x-csrf-token"] = decodeURIComponent(m[2]);
      }
      return req;
    },
  });
});
