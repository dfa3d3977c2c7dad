// The storage account behind the whole pipeline: payloads in blobs, stages in queues, small
// state in tables. Only Entra ID reaches it (shared keys off); the names below must match
// shared/platform/names.py, which tests/infra/test_consistency.py checks both ways.
param name string
param location string
param tags object
param sku string
param privateNetworking bool
param allowedIpRanges array
param rawRetentionDays int
param exportRetentionDays int
param auditRetentionDays int
param recoveryDays int
param workspaceId string

// names.Container, then names.PlatformContainer.
var containers = [
  'ingest-drop'
  'raw'
  'normalized'
  'fhir'
  'quarantine'
  'reports'
  'audit'
  'exports'
  'deadletter'
  'consents'
  'intake-requests'
  'app-package'
  'eventgrid-deadletter'
]

// names.Queue, each followed by the -poison queue the Functions host moves failing messages to.
var queues = [
  'blob-created'
  'blob-created-poison'
  'intake-requests'
  'intake-requests-poison'
  'normalize'
  'normalize-poison'
  'consent-check'
  'consent-check-poison'
  'store'
  'store-poison'
  'export'
  'export-poison'
  'notify'
  'notify-poison'
  'deliver'
  'deliver-poison'
]

// names.Table, less names.LOCAL_ONLY_TABLES.
var tables = [
  'ingestions'
  'idempotency'
  'partners'
  'subscriptions'
  'checkpoints'
  'consentindex'
  'resources'
  'compartments'
  'identifiers'
  'exportjobs'
  'deliveries'
  'uploads'
  'consolesessions'
]

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: the firewall denies by default with enablePrivateNetworking; without it Flex Consumption reaches storage over its public endpoint, where only Entra ID identities with a data role get in (shared keys are off).
  // checkov:skip=CKV_AZURE_59: as CKV_AZURE_35; public network access also stays on when private so Event Grid can deliver as a trusted service through the firewall.
  // checkov:skip=CKV_AZURE_206: redundancy is the storageSku parameter, zone-redundant (Standard_ZRS) unless the deployer picks otherwise; checkov cannot see a parameter's value.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: sku
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // Stays enabled when private: Event Grid reaches the account as a trusted service,
    // which the firewall below lets through; everything else is denied.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      // Private: only the app's subnet (through private endpoints), trusted Azure services
      // (Event Grid delivers with its system identity) and the listed ranges.
      defaultAction: privateNetworking ? 'Deny' : 'Allow'
      bypass: 'AzureServices'
      ipRules: [for range in allowedIpRanges: {
        value: range
        action: 'Allow'
      }]
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
          keyType: 'Account'
        }
        file: {
          enabled: true
          keyType: 'Account'
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    isVersioningEnabled: true
    deleteRetentionPolicy: {
      enabled: true
      days: recoveryDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: recoveryDays
    }
  }
}

resource blobContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for container in containers: {
  parent: blobService
  name: container
  properties: {
    publicAccess: 'None'
  }
}]

// AuditEvents cannot be changed or deleted for auditRetentionDays, by anyone. The policy is
// created unlocked; lock it once checked (az storage container immutability-policy lock),
// after which it can only be lengthened (README, "Deploying to Azure").
resource auditImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = {
  name: '${account.name}/default/audit/default'
  properties: {
    immutabilityPeriodSinceCreationInDays: auditRetentionDays
    allowProtectedAppendWrites: false
  }
  dependsOn: [
    blobContainers
  ]
}

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          // What partners sent, as sent and as first converted: cool after a month,
          // deleted when the retention ends (the unified record in fhir/ stays).
          name: 'partner-payloads'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                'raw/'
                'normalized/'
                'ingest-drop/'
              ]
            }
            actions: {
              baseBlob: {
                tierToCool: {
                  daysAfterModificationGreaterThan: 30
                }
                delete: {
                  daysAfterModificationGreaterThan: rawRetentionDays
                }
              }
            }
          }
        }
        {
          // Payloads internal producers referred to from intake-requests messages: copied
          // to raw/ when submitted, so kept only as long as a message may wait and retry.
          name: 'intake-request-payloads'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                'intake-requests/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: 7
                }
              }
            }
          }
        }
        {
          name: 'export-expiry'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                'exports/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: exportRetentionDays
                }
              }
            }
          }
        }
        {
          // Versioning keeps every overwritten blob; keep them long enough to recover from
          // a bad write, not forever. (Audit blobs are never overwritten.)
          name: 'earlier-versions'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
            }
            actions: {
              version: {
                delete: {
                  daysAfterCreationGreaterThan: recoveryDays
                }
              }
            }
          }
        }
        {
          name: 'audit-to-cool'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                'audit/'
              ]
            }
            actions: {
              baseBlob: {
                tierToCool: {
                  daysAfterModificationGreaterThan: 90
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    blobContainers
  ]
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource storageQueues 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [for queue in queues: {
  parent: queueService
  name: queue
}]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource storageTables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [for table in tables: {
  parent: tableService
  name: table
}]

resource accountDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: account
  properties: {
    workspaceId: workspaceId
    metrics: [
      {
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

// Queue reads are the stages polling every few seconds: logging them would cost more than it
// tells. Writes and deletes (each message in and out) are kept.
resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: queueService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'StorageWrite'
        enabled: true
      }
      {
        category: 'StorageDelete'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

resource tableDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: tableService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'allLogs'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'Transaction'
        enabled: true
      }
    ]
  }
}

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
output tableEndpoint string = account.properties.primaryEndpoints.table
