// Run once by the mongo image on its first start (docker-entrypoint-initdb.d), as root: one
// user per platform service, allowed to read and write its own database and nothing else.
// The passwords come from secrets-init (ops/compose_setup.py), never from this file.
const fs = require("fs");
const users = JSON.parse(fs.readFileSync("/run/secrets/mongo/users.json", "utf8"));
for (const [service, password] of Object.entries(users)) {
  const database = "mentorship_" + service;
  db.getSiblingDB(database).createUser({
    user: service,
    pwd: password,
    mechanisms: ["SCRAM-SHA-256"],
    roles: [{ role: "readWrite", db: database }],
  });
}
