// The app's user-assigned identity: created before the app so its roles exist by the time
// the Functions host first reaches storage (a system-assigned identity would not).
param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
