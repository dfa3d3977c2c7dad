// Data-plane roles. The app gets exactly what its code does: blobs (incl. immutability-aware
// writes and deletes on erasure), user delegation keys (it signs partners' upload URLs:
// Storage Blob Delegator, at account scope as the key's action requires; Blob Data Owner
// carries that action too, but the URLs must not depend on which data role the app has),
// queues, tables, Key Vault secrets it creates and rotates, telemetry with Entra auth.
// Partners get no role at all: they write ingest-drop only through those URLs. The deploying principal gets what the operator CLI
// (intake partners, intake replay) does. Names are guid(scope, principal, role): stable
// across redeployments, so nothing is duplicated or orphaned.
param storageAccountName string
param keyVaultName string
param appInsightsName string
param appPrincipalId string
param operatorPrincipalId string
param operatorPrincipalType string
// Internal producers (service principals or managed identities) that submit through the
// intake-requests queue: they may add messages to that queue and write payloads to the
// intake-requests container, nothing else (README, "Internal producers").
param producerPrincipalIds array = []

var role = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageBlobDelegator: 'db58b8e5-c6ad-4a2a-8342-4190687cbf4a'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageQueueDataMessageSender: 'c6a89b2d-59bc-44d0-9896-0f6e12d7b80a'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

var appStorageRoles = [
  role.storageBlobDataOwner
  role.storageBlobDelegator
  role.storageQueueDataContributor
  role.storageTableDataContributor
]

var operatorStorageRoles = [
  role.storageBlobDataContributor
  role.storageQueueDataContributor
  role.storageTableDataContributor
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource requestQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' existing = {
  parent: queueService
  name: 'intake-requests'
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: account
  name: 'default'
}

resource requestContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: blobService
  name: 'intake-requests'
}

resource producerQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for producer in producerPrincipalIds: {
  name: guid(requestQueue.id, producer, role.storageQueueDataMessageSender)
  scope: requestQueue
  properties: {
    principalId: producer
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.storageQueueDataMessageSender)
  }
}]

resource producerBlobs 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for producer in producerPrincipalIds: {
  name: guid(requestContainer.id, producer, role.storageBlobDataContributor)
  scope: requestContainer
  properties: {
    principalId: producer
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.storageBlobDataContributor)
  }
}]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource appStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in appStorageRoles: {
  name: guid(account.id, appPrincipalId, roleId)
  scope: account
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
  }
}]

resource appSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, appPrincipalId, role.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.keyVaultSecretsOfficer)
  }
}

resource appTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, role.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.monitoringMetricsPublisher)
  }
}

resource operatorStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in (empty(operatorPrincipalId) ? [] : operatorStorageRoles): {
  name: guid(account.id, operatorPrincipalId, roleId)
  scope: account
  properties: {
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
  }
}]

resource operatorSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(vault.id, operatorPrincipalId, role.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.keyVaultSecretsOfficer)
  }
}
